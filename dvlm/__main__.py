from dvlm.core.cli import main

main()

from dvlm.cli import main

main()

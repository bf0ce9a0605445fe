"""First-party plugins. Each sub-package is a plugin named ``dvlm.<sub-package>`` and registers its
kinds through the same hooks and the same loading path as a third-party package."""

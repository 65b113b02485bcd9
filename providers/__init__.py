"""Backends, one module each, installed as ``credhelper.providers``.

A backend subclasses ``credhelper.provider.Provider``, declares its settings and
implements ``fetch``; its console script line in ``pyproject.toml``
(``credhelper-NAME = "credhelper.entry:main"``) registers it (``credhelper.registry``).
It imports its library (hvac, boto3, msal, keyring, authlib) inside its methods only, and
reads the environment, the clocks and HTTP only through the ``Request`` it is handed.
"""

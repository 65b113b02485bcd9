"""Backends, one module each, installed as ``credhelper.providers``.

A backend subclasses ``credhelper.provider.Provider``, declares its settings and
implements ``fetch``; it is listed in ``credhelper.registry.BUILTIN``. It imports its
library (hvac, boto3, msal, keyring, authlib) inside its methods only.
"""

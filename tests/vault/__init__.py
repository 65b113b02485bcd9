"""Tests of the Vault / OpenBao backend (a package, so that its conftest does not
rebind the module name ``conftest`` that the top-level tests import helpers from)."""

"""Which backends exist, by name, imported only when a run needs one."""

from __future__ import annotations

import importlib

from credhelper.errors import ConfigError

# name -> "module:Class". Each backend's library is imported inside the provider's
# methods, so importing a provider module here stays cheap.
BUILTIN = {
    "keyring": "credhelper.providers.keyring:KeyringProvider",
    "vault": "credhelper.providers.vault:VaultProvider",
    "aws": "credhelper.providers.aws:AwsProvider",
    "azure": "credhelper.providers.azure:AzureProvider",
    "oidc": "credhelper.providers.oidc:OidcProvider",
}

_extra: dict[str, type] = {}


def register(cls) -> None:
    """Add a provider class at run time (the test suite's counting provider uses this)."""
    _extra[cls.name] = cls


def names() -> list[str]:
    return sorted(set(BUILTIN) | set(_extra))


def load(name: str):
    if name in _extra:
        return _extra[name]
    target = BUILTIN.get(name)
    if target is None:
        raise ConfigError(
            f"unknown provider {name!r}", hint=f"choose one of: {', '.join(names())}"
        )
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"the {name} provider is not available in this build: {exc}",
            hint=f"install credhelper with the {name} extra, or use the credhelper-{name} binary",
        ) from None
    return getattr(module, class_name)

"""Console-script entry points: one line per backend, all handed to one run function."""

import sys

from credhelper.run import helper_main, umbrella_main


def credhelper() -> None:
    sys.exit(umbrella_main())


def keyring() -> None:
    sys.exit(helper_main("keyring"))


def vault() -> None:
    sys.exit(helper_main("vault"))


def aws() -> None:
    sys.exit(helper_main("aws"))


def azure() -> None:
    sys.exit(helper_main("azure"))


def oidc() -> None:
    sys.exit(helper_main("oidc"))

"""The desktop presenter on each platform, in-process with the process launcher recorded:
the code and URL travel as arguments or variables, never inside script text."""

from __future__ import annotations

import pytest

from credhelper.providers import device_flow

MESSAGE = 'To sign in, open https://idp.example/device and enter the code AB"CD-$(x)'


ENV = {"PATH": "/usr/bin"}
INSTALLED = {"osascript", "open", "powershell", "notify-send", "zenity", "xdg-open"}


@pytest.fixture
def spawned(monkeypatch):
    """The launcher, recorded: tools in ``spawned.installed`` start, others are missing."""

    class Calls(list):
        installed = set(INSTALLED)

    calls = Calls()

    def spawn(argv, env):
        if argv[0] not in calls.installed:
            return False
        calls.append((argv, env))
        return True

    monkeypatch.setattr(device_flow, "_spawn", spawn)
    monkeypatch.setattr(device_flow, "_which",
                        lambda tool, env: tool if tool in calls.installed else None)
    return calls


def test_macos_shows_a_dialog_with_osascript(monkeypatch, spawned):
    monkeypatch.setattr(device_flow.sys, "platform", "darwin")
    assert device_flow.notify(MESSAGE, ENV) == "osascript"
    assert device_flow.open_browser("https://idp.example/device?user_code=X", ENV)
    (dialog, _), (browser, _) = spawned
    assert dialog[0] == "osascript" and dialog[-1] == MESSAGE
    assert all(MESSAGE not in part for part in dialog[:-1])
    assert browser == ["open", "https://idp.example/device?user_code=X"]


def test_windows_shows_a_message_box_with_powershell(monkeypatch, spawned):
    monkeypatch.setattr(device_flow.sys, "platform", "win32")
    monkeypatch.setattr(device_flow.os, "name", "nt")
    assert device_flow.notify(MESSAGE, ENV) == "powershell"
    [(argv, env)] = spawned
    assert argv[0] == "powershell" and MESSAGE not in " ".join(argv)
    assert env["CREDHELPER_PROMPT"] == MESSAGE and env["PATH"] == ENV["PATH"]


def test_linux_prefers_notify_send_then_zenity(monkeypatch, spawned):
    monkeypatch.setattr(device_flow.sys, "platform", "linux")
    spawned.installed = {"zenity"}
    assert device_flow.notify(MESSAGE, ENV) == "zenity"
    spawned.installed = set(INSTALLED)
    assert device_flow.notify(MESSAGE, ENV) == "notify-send"
    spawned.installed = set()
    assert device_flow.notify(MESSAGE, ENV) is None


def test_only_web_addresses_are_opened(spawned):
    assert not device_flow.open_browser("file:///etc/passwd", ENV)
    assert not device_flow.open_browser("javascript:alert(1)", ENV)
    assert spawned == []


def test_wsl_opens_the_windows_browser(monkeypatch, spawned, tmp_path):
    """WSL detection faked: /proc/version naming Microsoft's kernel, or WSL_DISTRO_NAME."""
    version = tmp_path / "version"
    version.write_text("Linux version 5.15.153.1-microsoft-standard-WSL2 (gcc)\n")
    monkeypatch.setattr(device_flow.sys, "platform", "linux")
    monkeypatch.setattr(device_flow, "PROC_VERSION", str(version))
    url = "https://idp.example/auth?client_id=a&state=b(c)|d"
    spawned.installed = {"wslview", "cmd.exe", "xdg-open"}
    assert device_flow.is_wsl(ENV) and device_flow.has_browser(ENV)  # no DISPLAY needed
    assert device_flow.open_browser(url, ENV) == "wslview"
    spawned.installed = {"cmd.exe", "xdg-open"}
    assert device_flow.open_browser(url, ENV) == "cmd.exe"
    # cmd.exe parses its command line: its metacharacters are escaped, nothing else changes.
    assert spawned[-1][0] == ["cmd.exe", "/c", "start",
                              "https://idp.example/auth?client_id=a^&state=b^(c^)^|d"]
    version.write_text("Linux version 6.1.0-13-amd64 (debian-kernel@lists.debian.org)\n")
    assert not device_flow.is_wsl(ENV) and not device_flow.has_browser(ENV)
    assert device_flow.is_wsl({**ENV, "WSL_DISTRO_NAME": "Ubuntu"})
    assert device_flow.open_browser(url, ENV) == "xdg-open"


def test_browser_command_gets_the_address_as_its_last_argument(monkeypatch, spawned):
    spawned.installed = {"/opt/firefox/firefox", "wslview"}
    monkeypatch.setattr(device_flow, "is_wsl", lambda env: True)  # the command still wins
    url = "https://idp.example/auth?x=1"
    opened = device_flow.open_browser(url, ENV, "/opt/firefox/firefox --new-window 'a b'")
    assert opened == "/opt/firefox/firefox"
    assert spawned[-1][0] == ["/opt/firefox/firefox", "--new-window", "a b", url]


@pytest.mark.parametrize("command, phrase", [("firefox 'unclosed", "browser_command:"),
                                             ("   ", "browser_command is empty")])
def test_a_browser_command_that_cannot_be_split_is_a_configuration_error(command, phrase):
    from credhelper.errors import ConfigError

    with pytest.raises(ConfigError, match=phrase):
        device_flow.split_command(command)


def test_notices_carry_title_and_text_as_arguments_only(monkeypatch, spawned):
    title, text = 'credhelper-oidc for "Acme" $(gw)', 'Sign in at idp.example in your browser'
    monkeypatch.setattr(device_flow.sys, "platform", "darwin")
    assert device_flow.notice(title, text, ENV) == "osascript"
    argv, _ = spawned[-1]
    assert argv[-2:] == [title, text] and "display notification" in " ".join(argv)
    assert all(title not in part and text not in part for part in argv[:-2])
    monkeypatch.setattr(device_flow.sys, "platform", "win32")
    monkeypatch.setattr(device_flow.os, "name", "nt")
    assert device_flow.notice(title, text, ENV) == "powershell"
    argv, env = spawned[-1]
    assert title not in " ".join(argv) and text not in " ".join(argv)
    assert "ToastNotificationManager" in argv[-1] and "NotifyIcon" in argv[-1]  # and fallback
    assert (env["CREDHELPER_TITLE"], env["CREDHELPER_PROMPT"]) == (title, text)
    monkeypatch.setattr(device_flow.sys, "platform", "linux")
    monkeypatch.setattr(device_flow.os, "name", "posix")
    assert device_flow.notice(title, text, ENV) == "notify-send"
    assert spawned[-1][0] == ["notify-send", "--app-name=credhelper", title, text]


def test_who_is_asking_comes_from_display_name_else_the_apps_gateway(monkeypatch):
    from credhelper import managed

    assert device_flow.gateway_name({"display_name": "Acme gateway"}) == "Acme gateway"
    monkeypatch.setattr(managed, "app_values", lambda names: {
        "inferenceGatewayBaseUrl": ("https://gw.example.com:8443/v1", "plist")})
    assert device_flow.gateway_name({}) == "gw.example.com"
    monkeypatch.setattr(managed, "app_values", lambda names: {})
    assert device_flow.gateway_name(None) is None


def fake_request(stderr_is_tty: bool, stdin_is_tty: bool = False):
    import io
    import types

    from credhelper.log import Log

    log = Log("credhelper-test", stderr=io.StringIO())
    return types.SimpleNamespace(log=log, env=ENV, stderr_is_tty=stderr_is_tty,
                                 stdin_is_tty=stdin_is_tty, login_deadline=100.0,
                                 monotonic=lambda: 0.0)


def test_a_browser_sign_in_on_a_terminal_prints_the_address_and_notifies_nobody(
        monkeypatch, spawned):
    monkeypatch.setattr(device_flow.sys, "platform", "linux")
    request = fake_request(stderr_is_tty=True)
    shown = device_flow.Presenter(request, gateway="Acme gateway")
    assert shown.asking == "credhelper-test for Acme gateway"
    url = "https://idp.example/auth?x=1"
    assert shown.browser(url, "idp.example") == "terminal"
    said = request.log.stderr.getvalue()
    assert "credhelper-test for Acme gateway: sign in at idp.example in your browser" in said
    assert url in said
    assert [argv[0] for argv, _ in spawned] == ["xdg-open"]  # the browser, no notification
    assert shown.notice("approve the push on your phone") == "terminal"
    assert len(spawned) == 1


def test_without_a_terminal_the_desktop_asks(monkeypatch, spawned):
    from credhelper.providers import prompt

    monkeypatch.setattr(device_flow.sys, "platform", "linux")
    request = fake_request(stderr_is_tty=False)
    shown = device_flow.Presenter(request, gateway="Acme gateway")
    assert shown.browser("https://idp.example/auth", "idp.example") == "desktop"
    assert [argv[0] for argv, _ in spawned] == ["xdg-open", "notify-send"]
    assert "credhelper-test: waiting for a sign-in at idp.example in the browser (opened " \
           "with xdg-open; notification: notify-send)" in request.log.stderr.getvalue()
    asked = []
    monkeypatch.setattr(prompt, "ask", lambda q, seconds, env, title: asked.append(
        (q, seconds, title)) or "123456")
    assert shown.ask("MFA code for arn:aws:iam::1:mfa/me") == "123456"
    assert asked == [("MFA code for arn:aws:iam::1:mfa/me", 98.0,
                      "credhelper-test for Acme gateway")]

"""Everything that talks to Kaggle goes through here: the credential check, the client, errors in plain words.

``import kaggle`` authenticates at import time (and prints a help text when it finds no credentials), so the
client is imported lazily, only after :func:`find_credentials` has found something to authenticate with and
:func:`check_reachable` has reached the API. Both fail with a :class:`KaggleSetupError` that says exactly
what to set up; an API or network error during the work becomes a :class:`KaggleApiError` in plain words
(:func:`plain_errors`). The CLIs turn both into ``error: ...`` and exit code 2, never a stack trace.

The client honours ``KAGGLE_API_ENVIRONMENT`` (``TEST`` = ``http://localhost:7777``, used by the tests'
stand-in server); the stock ``KaggleApi`` only honours ``LOCALHOST``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping
from data.core.errors import StageError
from data.core.io import read_json_lenient


log = logging.getLogger(__name__)

SETTINGS_URL = "https://www.kaggle.com/settings/api"

CREDENTIALS_HELP = f"""no Kaggle credentials found. Set up one of these, then run again:
  1. An API token (recommended): on {SETTINGS_URL} click "Generate New Token", then either
       export KAGGLE_API_TOKEN=<the token>
     or save it in ~/.kaggle/access_token and run: chmod 600 ~/.kaggle/access_token
  2. A legacy API key (the kaggle.json file offered on the same page): either
       export KAGGLE_USERNAME=<your user name> KAGGLE_KEY=<the key>
     or move kaggle.json to ~/.kaggle/kaggle.json and run: chmod 600 ~/.kaggle/kaggle.json
     (KAGGLE_CONFIG_DIR=<folder> moves that folder)
  3. An OAuth login: .venv/bin/kaggle auth login  (stores ~/.kaggle/credentials.json)
Permissions: downloading needs any Kaggle account; publishing needs the account (or an organisation it can
write to) named by [publish].owner, by default the credentials' own user name. Tokens and keys created on
the settings page carry both; keep the files readable by you only."""

# What to do next, by HTTP status of a failed API call.
_HINTS = {
    400: "Kaggle refused the request as invalid: check the dataset id (owner/slug with lowercase letters, digits "
    "and hyphens), the title (6-50 characters) and subtitle (20-80); `--dry-run` validates them locally.",
    401: f"the credentials were not accepted: the key or token is wrong, expired or revoked. Create a new one on "
    f"{SETTINGS_URL} and set it up again.",
    403: "the account is not allowed to do this: for a download, open the dataset page once while logged in and "
    "accept its terms; for a publish, set [publish].owner to your own user name (or an organisation you "
    "can write to) and check the token was not created with reduced permissions.",
    404: "not found: check the dataset id (owner/slug); a private dataset is visible only to its owner.",
    409: "conflict: a dataset with this slug exists or is still being created; wait a minute or choose another "
    "[publish].slug.",
    413: "too large for Kaggle: check the dataset size limits on kaggle.com.",
    429: "Kaggle is rate-limiting this account: wait a few minutes and run again.",
}
_SERVER_HINT = "Kaggle had a server-side problem: wait a few minutes and run again (uploads resume)."


class KaggleSetupError(StageError):
    """Something to set up before Kaggle can be used (credentials, network); the message says what."""


class KaggleApiError(StageError):
    """A Kaggle API or network failure during the work, in plain words with what to do next."""


@dataclass(frozen=True)
class Credentials:
    """Where the client will find its credentials (never the secret itself)."""

    kind: str  # "token", "key" or "oauth"
    source: str  # e.g. "KAGGLE_API_TOKEN", "~/.kaggle/kaggle.json"
    username: str = ""  # known without a network call only for keys and OAuth logins


def kaggle_config_dir(environ: Mapping[str, str] | None = None, home: Path | None = None) -> Path:
    """The folder the client reads ``kaggle.json`` from (same rules as the installed client)."""
    environ = os.environ if environ is None else environ
    home = Path(environ.get("HOME", "~")).expanduser() if home is None else home
    if environ.get("KAGGLE_CONFIG_DIR"):
        return Path(environ["KAGGLE_CONFIG_DIR"]).expanduser()
    legacy = home / ".kaggle"
    if legacy.exists():
        return legacy
    return Path(environ.get("XDG_CONFIG_HOME") or home / ".config") / "kaggle"


def _warn_if_readable_by_others(path: Path) -> None:
    if os.name != "nt" and path.stat().st_mode & (stat.S_IRGRP | stat.S_IROTH):
        log.warning("%s is readable by other users: run chmod 600 %s", path, path)


def _token(environ: Mapping[str, str], home: Path) -> Credentials | None:
    value = environ.get("KAGGLE_API_TOKEN", "").strip()
    if value:  # the token itself, or the path of a file holding it
        path = Path(value).expanduser()
        if path.is_file() and not path.read_text(encoding="utf-8", errors="replace").strip():
            return None
        return Credentials("token", "KAGGLE_API_TOKEN")
    for name in ("access_token", "access_token.txt"):
        path = home / ".kaggle" / name
        if path.is_file() and path.read_text(encoding="utf-8", errors="replace").strip():
            _warn_if_readable_by_others(path)
            return Credentials("token", f"~/.kaggle/{name}")
    return None


def find_credentials(environ: Mapping[str, str] | None = None, home: Path | None = None) -> Credentials | None:
    """The credentials the Kaggle client would use, in its own order, without any network call.

    Args:
        environ: environment variables (default ``os.environ``).
        home: the home folder (default ``$HOME``).

    Returns:
        Where the credentials are, or ``None`` when there are none.
    """
    environ = os.environ if environ is None else environ
    home = Path(environ.get("HOME", "~")).expanduser() if home is None else home
    token = _token(environ, home)
    if token:
        return token
    config = kaggle_config_dir(environ, home) / "kaggle.json"
    values = read_json_lenient(config) or {}
    username = environ.get("KAGGLE_USERNAME") or values.get("username") or ""
    key = environ.get("KAGGLE_KEY") or values.get("key") or ""
    if username and key:
        from_env = "KAGGLE_USERNAME" in environ and "KAGGLE_KEY" in environ
        if not from_env:
            _warn_if_readable_by_others(config)
        return Credentials("key", "KAGGLE_USERNAME/KAGGLE_KEY" if from_env else str(config), str(username))
    oauth = read_json_lenient(home / ".kaggle" / "credentials.json") or {}
    if oauth.get("refresh_token"):
        return Credentials("oauth", "~/.kaggle/credentials.json", str(oauth.get("username") or ""))
    return None


def api_endpoint() -> str:
    """The API base URL the client will call (``KAGGLE_API_ENVIRONMENT`` picks it; default api.kaggle.com)."""
    from kagglesdk.kaggle_env import get_endpoint, get_env

    try:
        return get_endpoint(get_env())
    except Exception as exc:  # the SDK raises a bare Exception for an unknown value
        raise KaggleSetupError(f"{exc}: unset KAGGLE_API_ENVIRONMENT to use kaggle.com") from exc


def check_reachable(endpoint: str, timeout: float = 10.0) -> None:
    """Fail at once with a :class:`KaggleSetupError` when the API cannot be reached (offline, proxy, DNS)."""
    import requests

    try:
        requests.head(endpoint, timeout=timeout, allow_redirects=False)
    except requests.exceptions.RequestException as exc:
        raise KaggleSetupError(
            f"cannot reach the Kaggle API at {endpoint} ({type(exc).__name__}): this machine looks offline. "
            "Check the internet connection (behind a proxy, set HTTPS_PROXY), then run again."
        ) from exc


@contextlib.contextmanager
def _client_output(level: int = logging.DEBUG) -> Iterator[None]:
    """Catch what the client prints (help texts, warnings) and log it instead."""
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            yield
    finally:
        for line in out.getvalue().splitlines():
            if line.strip():
                log.log(level, "kaggle: %s", line)


def _api_class() -> type:
    with _client_output():
        from kaggle.api.kaggle_api_extended import KaggleApi
    from kagglesdk import KaggleClient
    from kagglesdk.kaggle_env import get_env

    class EnvAwareKaggleApi(KaggleApi):
        """The stock client, except that it calls the API named by ``KAGGLE_API_ENVIRONMENT``."""

        def build_kaggle_client(self) -> KaggleClient:
            return KaggleClient(
                env=get_env(),
                verbose="--verbose" in self.args,
                username=self.config_values.get(self.CONFIG_NAME_USER),
                password=self.config_values.get(self.CONFIG_NAME_KEY),
                api_token=self.config_values.get(self.CONFIG_NAME_TOKEN),
                response_processor=self.get_response_processor(),
            )

    return EnvAwareKaggleApi


def connect(timeout: float = 10.0) -> Any:
    """An authenticated Kaggle client (``KaggleApi``), or a :class:`KaggleSetupError` saying what to set up.

    Checks, in order and before any work: credentials exist (no network), the API answers, the client
    accepts the credentials.
    """
    creds = find_credentials()
    if creds is None:
        raise KaggleSetupError(CREDENTIALS_HELP)
    endpoint = api_endpoint()
    check_reachable(endpoint, timeout)
    api = _api_class()()
    try:
        with _client_output(logging.INFO):
            api.authenticate()
    except SystemExit as exc:  # the client exits when no method worked (e.g. an expired token)
        raise KaggleSetupError(
            f"the Kaggle client could not authenticate with {creds.source}.\n" + CREDENTIALS_HELP
        ) from exc
    except (OSError, ValueError) as exc:  # requests' errors are OSErrors
        raise KaggleSetupError(explain(exc, f"authenticating with {creds.source}")) from exc
    log.info("Kaggle API %s, credentials from %s (user %s)", endpoint, creds.source, username(api) or "?")
    return api


def username(api: Any) -> str:
    """The user name the authenticated client acts as ('' when unknown)."""
    return str(api.config_values.get("username") or "")


def _server_message(response: Any) -> str:
    try:
        doc = response.json()
    except ValueError:
        text = (response.text or "").strip()
        return text[:200]
    if isinstance(doc, dict):
        return str(doc.get("message") or doc.get("error") or "")[:300]
    return ""


def explain(exc: BaseException, action: str) -> str:
    """One paragraph for the user: what failed, what Kaggle said, and what to do next."""
    import requests

    if isinstance(exc, requests.exceptions.HTTPError) and exc.response is not None:
        status = exc.response.status_code
        said = _server_message(exc.response) or str(exc)
        hint = _HINTS.get(status, _SERVER_HINT if status >= 500 else "check the message above and run again.")
        return f"{action} failed: Kaggle answered HTTP {status} ({said}). What to do: {hint}"
    if isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
        return (
            f"{action} failed: the connection to Kaggle broke ({type(exc).__name__}). Check the internet "
            "connection and run again (an interrupted upload resumes)."
        )
    return f"{action} failed: {exc}"


@contextlib.contextmanager
def plain_errors(action: str) -> Iterator[None]:
    """Turn the client's expected failures (HTTP, network, its own ValueErrors) into :class:`KaggleApiError`."""
    import requests

    try:
        yield
    except (requests.exceptions.RequestException, ValueError, OSError) as exc:
        raise KaggleApiError(explain(exc, action)) from exc

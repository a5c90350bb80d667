"""Policy secret env at rest: Fernet-encrypted, key from COWORLD_SECRET_KEY or `<home>/secret.key` (0600)."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

KEY_FILENAME = "secret.key"


class SecretKeyError(RuntimeError):
    pass


def load_or_create_key(home: Path) -> bytes:
    env = os.environ.get("COWORLD_SECRET_KEY")
    if env:
        return env.strip().encode()
    path = home / KEY_FILENAME
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        # Write to a private temp file, then link it into place: concurrent creators agree on one key
        # and nobody ever reads a half-written file.
        tmp = home / f".{KEY_FILENAME}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, Fernet.generate_key())
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    return path.read_bytes().strip()


class SecretBox:
    def __init__(self, key: bytes):
        try:
            self._fernet = Fernet(key)
        except (ValueError, TypeError) as err:
            raise SecretKeyError(f"the secret key is not a valid Fernet key: {err}") from None
        self._mac_key = hashlib.sha256(b"coworld-secret-digest:" + key).digest()

    def encrypt(self, values: dict[str, str]) -> str | None:
        if not values:
            return None
        return self._fernet.encrypt(json.dumps(values, sort_keys=True).encode()).decode()

    def decrypt(self, token: str | None) -> dict[str, str]:
        if not token:
            return {}
        try:
            return json.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken:
            raise SecretKeyError(
                "cannot decrypt a policy's secret env: COWORLD_SECRET_KEY / secret.key differs from the key "
                "it was stored with"
            ) from None

    def digest(self, values: dict[str, str]) -> str:
        """A keyed digest of the values (for duplicate detection) that reveals nothing without the key."""
        return hmac.new(
            self._mac_key, json.dumps(values, sort_keys=True).encode(), hashlib.sha256
        ).hexdigest()

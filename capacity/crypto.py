"""Encryption at rest for confidential facility addresses (Fernet: AES-128-CBC + HMAC-SHA256).

Keys come from ``ABRI_ADDRESS_KEY`` (comma-separated Fernet keys, newest first, so keys can be
rotated with MultiFernet). Without it, a key file is created beside the database on first use
(mode 0600) so a fresh laptop works; production must set the variable and keep the key out of
database backups, which is the point: a leaked dump or backup reveals no refuge address.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import msgspec
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from capacity.errors import AbriError
from capacity.settings import Settings


class Address(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, rename="camel"):
    """A facility's address as a client sends it: each part has a limit (it was unbounded,
    and encrypted whole). ``StoredAddress`` reads what was stored, limits or not."""

    street: Annotated[str, msgspec.Meta(max_length=200)] = msgspec.field(default="")
    postal_code: Annotated[str, msgspec.Meta(max_length=16)] = ""
    city: Annotated[str, msgspec.Meta(max_length=100)] = ""
    # e.g. entrance, door code policy: still confidential
    notes: Annotated[str, msgspec.Meta(max_length=2000)] = ""


class StoredAddress(msgspec.Struct, kw_only=True, rename="camel"):
    """An address as encrypted at rest: no limits, so that one stored before them opens."""

    street: str = ""
    postal_code: str = ""
    city: str = ""
    notes: str = ""


class AddressKeyError(AbriError):
    code = "address-key"
    status = 500
    title = "Address key unavailable"


MAKE_KEY = (
    "python3 -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
)


def _check_keys(keys: list[bytes], where: str) -> None:
    """Name the setting and the key that is not a Fernet key (e.g. the environment file
    example's ``CHANGE-ME`` left in place), instead of cryptography's bare ValueError."""
    for i, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            which = f"key {i} of {len(keys)}" if len(keys) > 1 else "the key"
            raise AddressKeyError(
                f"{where}: {which} is not a Fernet key (44 characters of URL-safe base64). "
                f"Make one with: {MAKE_KEY}"
            ) from None


def _sqlite(url: str) -> bool:
    from capacity.db import is_sqlite

    return is_sqlite(url)


class AddressCipher:
    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise AddressKeyError("No address encryption key configured.")
        self._fernet = MultiFernet([Fernet(k) for k in keys])
        self._opens: dict[str, bool] = {}  # ciphertext -> whether these keys open it

    def opens(self, ciphertext: str) -> bool:
        """Whether one of the keys decrypts ``ciphertext`` (remembered: readiness asks this of
        the same few ciphertexts every few seconds)."""
        known = self._opens.get(ciphertext)
        if known is None:
            try:
                self._fernet.decrypt(ciphertext.encode())
                known = True
            except InvalidToken:
                known = False
            if len(self._opens) > 64:
                self._opens.clear()
            self._opens[ciphertext] = known
        return known

    @classmethod
    def configured(cls, settings: Settings) -> AddressCipher:
        """The keys ``settings`` name (see :meth:`from_settings`)."""
        return cls.from_settings(
            settings.address_key, settings.address_key_file, database_url=settings.database_url
        )

    @classmethod
    def from_settings(
        cls, key_env: str | None, key_file: str, *, database_url: str | None = None
    ) -> AddressCipher:
        """The configured keys. Without ``ABRI_ADDRESS_KEY``, the key file, made on first use
        for the embedded SQLite database only: on PostgreSQL several processes and hosts share
        the data, and a key made by one of them would seal addresses no other can open."""
        if key_env:
            keys = [k.strip().encode() for k in key_env.split(",") if k.strip()]
            _check_keys(keys, "ABRI_ADDRESS_KEY")
            return cls(keys)
        path = Path(key_file)
        if not path.exists() and database_url and not _sqlite(database_url):
            raise AddressKeyError(
                f"ABRI_ADDRESS_KEY is not set (and there is no key file {path}): on PostgreSQL "
                "every process needs the same key. Put it in the environment file; make it "
                f"ONCE, never again for the same database, with: {MAKE_KEY}"
            )
        if not path.exists():
            key = Fernet.generate_key()
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(key)
        keys = [path.read_bytes().strip()]
        _check_keys(keys, f"the key file {path} (ABRI_ADDRESS_KEY_FILE)")
        return cls(keys)

    def encrypt(self, address: Address) -> str:
        return self._fernet.encrypt(msgspec.json.encode(address)).decode()

    def decrypt(self, ciphertext: str) -> Address:
        try:
            raw = self._fernet.decrypt(ciphertext.encode())
        except InvalidToken as exc:
            raise AddressKeyError(
                "The address cannot be decrypted with the configured key."
            ) from exc
        stored = msgspec.json.decode(raw, type=StoredAddress)
        return Address(
            street=stored.street,
            postal_code=stored.postal_code,
            city=stored.city,
            notes=stored.notes,
        )

    def encrypt_text(self, text: str) -> str:
        """Other secrets kept under the same keys (webhook secrets, feed credentials)."""
        return self._fernet.encrypt(text.encode()).decode()

    def decrypt_text(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken as exc:
            raise AddressKeyError("A secret cannot be decrypted with the configured key.") from exc

    def rotate(self, ciphertext: str) -> str:
        return self._fernet.rotate(ciphertext.encode()).decode()

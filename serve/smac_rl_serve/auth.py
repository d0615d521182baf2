"""Tenants and API keys.

A tenant is a CPO. An API key is a random 256-bit secret; the service stores only its SHA-256
(a fast hash suffices for a high-entropy key: nothing to brute-force, and no slow hash on the
request path), mapped to the tenants the key acts for. INCAR's key may act for several CPOs.

Keys come from :attr:`Settings.api_keys` and :attr:`Settings.api_keys_file` (JSON or YAML of
``{sha256_hex: [tenant_id, ...]}``); :func:`mint_api_key` makes a key and the hash to configure.
Callers send ``Authorization: Bearer <key>``. Without any key configured, the service has one
tenant, ``public``, and asks for no key.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from smac_rl_serve.errors import ApiError
from smac_rl_serve.settings import PUBLIC_TENANT_ID, Settings

KEY_PREFIX = "smac_"
"""Prefix of minted keys (lets secret scanners recognise them)."""

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")


def hash_api_key(key: str) -> str:
    """The SHA-256 hex digest the service stores for a key."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def mint_api_key() -> tuple[str, str]:
    """A new API key and its hash.

    Returns:
        ``(key, sha256_hex)``: hand the key to the CPO or INCAR once; configure only the hash.
    """
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    return key, hash_api_key(key)


def load_api_keys(path: Path) -> dict[str, tuple[str, ...]]:
    """Read a key file: JSON or YAML of ``{sha256_hex: [tenant_id, ...]}``.

    Raises:
        ValueError: When the file is missing or malformed; the message names the entry.
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))  # JSON is YAML
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"api_keys_file: cannot read {str(path)!r} ({exc})") from None
    if not isinstance(data, Mapping):
        raise ValueError(f"api_keys_file: {str(path)!r} holds no mapping of key hashes to tenant lists")
    return check_api_keys({str(k): v for k, v in data.items()}, str(path))


def check_api_keys(keys: Mapping[str, object], source: str = "api_keys") -> dict[str, tuple[str, ...]]:
    """Check a mapping of key hashes to tenant lists.

    Raises:
        ValueError: For a hash that is not 64 lowercase hex digits or a tenant list that is empty
            or holds a bad id.
    """
    checked: dict[str, tuple[str, ...]] = {}
    for digest, tenants in keys.items():
        if not _SHA256_HEX.fullmatch(digest):
            raise ValueError(f"{source}: key {digest[:16]!r}... is not a SHA-256 hex digest (64 of 0-9a-f)")
        if (
            not isinstance(tenants, list | tuple)
            or not tenants
            or not all(isinstance(t, str) and _TENANT.fullmatch(t) for t in tenants)
        ):
            raise ValueError(f"{source}: key {digest[:12]}...: expected a non-empty list of tenant ids")
        checked[digest] = tuple(str(t) for t in tenants)
    return checked


def configured_keys(settings: Settings) -> dict[str, tuple[str, ...]]:
    """The settings' keys with the key file's merged in (the file's tenants added to a hash's)."""
    keys = check_api_keys(settings.api_keys)
    if settings.api_keys_file is not None:
        for digest, tenants in load_api_keys(settings.api_keys_file).items():
            keys[digest] = tuple(dict.fromkeys((*keys.get(digest, ()), *tenants)))
    return keys


@dataclass(frozen=True)
class Caller:
    """Who sent a request.

    Attributes:
        tenant_ids: The tenants the caller acts for.
        key_sha256: Hash of the key used; None without keys.
    """

    tenant_ids: frozenset[str]
    key_sha256: str | None

    def may_act_for(self, tenant_id: str) -> bool:
        """Tell whether the caller acts for a tenant."""
        return tenant_id in self.tenant_ids


class KeyRing:
    """Resolves bearer keys to callers.

    Attributes:
        keys: Key hash -> tenants.
    """

    def __init__(self, keys: Mapping[str, tuple[str, ...]]) -> None:
        self.keys = dict(keys)

    @property
    def is_open(self) -> bool:
        """No key configured: every caller is tenant ``public``."""
        return not self.keys

    def caller(self, bearer: str | None) -> Caller | None:
        """The caller of a bearer key; None when keys are configured and this one is absent or unknown."""
        if self.is_open:
            return Caller(frozenset({PUBLIC_TENANT_ID}), None)
        if not bearer:
            return None
        digest = hash_api_key(bearer)
        tenants = self.keys.get(digest)
        return None if tenants is None else Caller(frozenset(tenants), digest)

    def require(self, bearer: str | None) -> Caller:
        """The caller of a bearer key.

        Raises:
            ApiError: 401 when the key is absent or unknown.
        """
        caller = self.caller(bearer)
        if caller is None:
            raise ApiError(
                401,
                [
                    {
                        "field": "header.Authorization",
                        "value": "nothing" if not bearer else "an unknown key",
                        "expected": "Bearer <API key> of a configured key",
                    }
                ],
                headers={"WWW-Authenticate": "Bearer"},
            )
        return caller


def key_file_text(keys: Mapping[str, list[str]]) -> str:
    """A key file's JSON text for ``{sha256_hex: [tenant_id, ...]}`` (what deployment tools write)."""
    return json.dumps(dict(keys), indent=2, sort_keys=True) + "\n"

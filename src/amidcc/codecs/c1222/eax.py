"""EAX' (C12.22 security modes 1 and 2), AES-128 from ``cryptography``.

protocol-facts.md 3.5, verified bit-exact against the C12.22 standard's example 8 (S3) and tshark:

* L = E(0), D = dbl(L), Q = dbl(D), where C12.22's dbl treats the block as a **little-endian**
  128-bit integer (textbook big-endian CMAC doubling verifies none of the captures);
* OMAC'(start, M) = CBC-MAC over M with IV ``start``, the last block XORed with D when full, else
  padded with ``80 00..`` and XORed with Q;
* mode 2: N' = OMAC'(D, N); counter = N' with the top bits of bytes 12 and 14 cleared; C = CTR(P)
  with a 128-bit big-endian increment; MAC = (N' xor OMAC'(Q, C))[12:16] (N'[12:16] when P is empty);
* mode 1: MAC = OMAC'(D, N || body)[12:16], body left in clear.

N is the canonical cleartext built by :mod:`amidcc.codecs.c1222.security`. Per-key values (L, D, Q
and the ECB encryptor) are cached, because every APDU needs them.
"""

from __future__ import annotations

import functools
import hmac
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ..errors import LocalProtocolError

__all__ = [
    "MAC_SIZE",
    "EaxKey",
    "counter_block",
    "dbl",
    "eax_decrypt",
    "eax_encrypt",
    "eax_key",
    "mac_matches",
    "mode1_mac",
    "omac",
]

#: C12.22 keeps the last 4 bytes of the EAX' tag.
MAC_SIZE = 4
_BLOCK = 16
_MASK128 = (1 << 128) - 1


def dbl(block: bytes) -> bytes:
    """C12.22 doubling: shift the block left one bit as a little-endian integer; carry XORs byte 0 with 87."""
    value = int.from_bytes(block, "little") << 1
    if value >> 128:
        value = (value & _MASK128) ^ 0x87
    return value.to_bytes(_BLOCK, "little")


@dataclass(frozen=True, eq=False)
class EaxKey:
    """One AES-128 key with its EAX' constants (build it with :func:`eax_key`, which caches)."""

    key: bytes
    """The 16-byte AES key."""
    algorithm: algorithms.AES
    """The cipher algorithm object, reused for every CBC-MAC and CTR context of this key."""
    l_block: bytes
    """L = E(0^128)."""
    d_block: bytes
    """D = dbl(L)."""
    q_block: bytes
    """Q = dbl(D)."""


def eax_key(key: bytes | bytearray) -> EaxKey:
    """The cached EAX' context of ``key`` (16 bytes)."""
    if not isinstance(key, bytes | bytearray) or len(key) != 16:
        raise LocalProtocolError("a C12.22 key is 16 bytes (AES-128)")
    return _eax_key(bytes(key))


@functools.lru_cache(maxsize=1024)
def _eax_key(key: bytes) -> EaxKey:
    algorithm = algorithms.AES(key)
    # E is AES-128-ECB; the CBC-MAC below runs as one CBC pass, which is the same computation.
    l_block = Cipher(algorithm, modes.ECB()).encryptor().update(bytes(_BLOCK))
    d_block = dbl(l_block)
    return EaxKey(key, algorithm, l_block, d_block, dbl(d_block))


def _xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(_BLOCK, "big")


def omac(ctx: EaxKey, start: bytes, message: bytes) -> bytes:
    """OMAC'(start, M): CBC-MAC with IV ``start``; the last block XORed with D (full) or Q (padded)."""
    cut = (len(message) - 1) // _BLOCK * _BLOCK if message else 0
    last = message[cut:]
    if len(last) == _BLOCK:
        last = _xor(last, ctx.d_block)
    else:
        last = _xor(last + b"\x80" + bytes(_BLOCK - 1 - len(last)), ctx.q_block)
    cbc = Cipher(ctx.algorithm, modes.CBC(start)).encryptor()
    return cbc.update(message[:cut] + last)[-_BLOCK:]


def counter_block(n_prime: bytes) -> bytes:
    """The CTR start block: N' with bit 7 of bytes 12 and 14 cleared (EAX' clears bits 31 and 15)."""
    counter = bytearray(n_prime)
    counter[12] &= 0x7F
    counter[14] &= 0x7F
    return bytes(counter)


def _ctr(ctx: EaxKey, n_prime: bytes, data: bytes) -> bytes:
    # cryptography's CTR increments the whole 128-bit block big-endian, as EAX' requires.
    return Cipher(ctx.algorithm, modes.CTR(counter_block(n_prime))).encryptor().update(data)


def _mode2_mac(ctx: EaxKey, n_prime: bytes, ciphertext: bytes) -> bytes:
    if not ciphertext:
        return n_prime[12:16]
    return _xor(n_prime, omac(ctx, ctx.q_block, ciphertext))[12:16]


def eax_encrypt(key: bytes, cleartext: bytes, plaintext: bytes) -> tuple[bytes, bytes]:
    """Mode 2: encrypt ``plaintext`` under canonical cleartext N; returns ``(ciphertext, mac)``."""
    ctx = eax_key(key)
    n_prime = omac(ctx, ctx.d_block, cleartext)
    ciphertext = _ctr(ctx, n_prime, plaintext)
    return ciphertext, _mode2_mac(ctx, n_prime, ciphertext)


def eax_decrypt(key: bytes, cleartext: bytes, ciphertext: bytes, mac: bytes) -> bytes | None:
    """Mode 2: the plaintext, or None when ``mac`` does not verify (nothing is decrypted then)."""
    ctx = eax_key(key)
    n_prime = omac(ctx, ctx.d_block, cleartext)
    if not mac_matches(_mode2_mac(ctx, n_prime, ciphertext), mac):
        return None
    return _ctr(ctx, n_prime, ciphertext)


def mode1_mac(key: bytes, cleartext: bytes, body: bytes) -> bytes:
    """Mode 1: the 4-byte MAC of canonical cleartext N followed by the clear body."""
    ctx = eax_key(key)
    return omac(ctx, ctx.d_block, cleartext + body)[12:16]


def mac_matches(expected: bytes, received: bytes) -> bool:
    """Constant-time comparison of two MACs."""
    return hmac.compare_digest(expected, received)

"""An independent IKEv2 key schedule in pure Python (stdlib hmac, `cryptography`
AES and CMAC), written straight from RFC 7296 §2.13-2.18, RFC 5723 §5.1,
RFC 4434 and RFC 4615, to check the C core against."""
import hashlib
import hmac

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC

HASHES = {5: hashlib.sha256, 6: hashlib.sha384, 7: hashlib.sha512}
OUT_LEN = {4: 16, 5: 32, 6: 48, 7: 64, 8: 16}


def _aes_block(key, block):
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return enc.update(block) + enc.finalize()


def xcbc_mac(key, msg):
    k1, k2, k3 = (_aes_block(key, bytes([c]) * 16) for c in (1, 2, 3))
    blocks = [msg[i:i + 16] for i in range(0, len(msg), 16)] or [b""]
    e = bytes(16)
    for b in blocks[:-1]:
        e = _aes_block(k1, bytes(x ^ y for x, y in zip(e, b)))
    last = blocks[-1]
    if len(last) == 16:
        last = bytes(x ^ y for x, y in zip(last, k2))
    else:
        last = last + b"\x80" + bytes(15 - len(last))
        last = bytes(x ^ y for x, y in zip(last, k3))
    return _aes_block(k1, bytes(x ^ y for x, y in zip(e, last)))


def cmac(key, msg):
    c = CMAC(algorithms.AES(key))
    c.update(msg)
    return c.finalize()


def prf(prf_id, key, data):
    if prf_id in HASHES:
        return hmac.new(key, data, HASHES[prf_id]).digest()
    if prf_id == 4:
        if len(key) < 16:
            key = key + bytes(16 - len(key))
        elif len(key) > 16:
            key = xcbc_mac(bytes(16), key)
        return xcbc_mac(key, data)
    if prf_id == 8:
        if len(key) != 16:
            key = cmac(bytes(16), key)
        return cmac(key, data)
    raise ValueError(prf_id)


def prf_plus(prf_id, key, seed, length):
    out, t, n = b"", b"", 1
    while len(out) < length:
        t = prf(prf_id, key, t + seed + bytes([n]))
        out, n = out + t, n + 1
    return out[:length]


def split_keys(prf_id, stream, integ_len, encr_len):
    p = OUT_LEN[prf_id]
    lens = [p, integ_len, integ_len, encr_len, encr_len, p, p]
    out, at = [], 0
    for n in lens:
        out.append(stream[at:at + n])
        at += n
    return out


def initial(prf_id, ni, nr, gir, spi_i, spi_r, integ_len, encr_len):
    key = ni[:8] + nr[:8] if prf_id in (4, 8) else ni + nr
    skeyseed = prf(prf_id, key, gir)
    total = 3 * OUT_LEN[prf_id] + 2 * integ_len + 2 * encr_len
    return skeyseed, split_keys(prf_id, prf_plus(prf_id, skeyseed, ni + nr + spi_i + spi_r, total),
                                integ_len, encr_len)


def rekey(old_prf, sk_d, new_prf, prefix, ni, nr, spi_i, spi_r, integ_len, encr_len):
    skeyseed = prf(old_prf, sk_d, prefix + ni + nr)
    total = 3 * OUT_LEN[new_prf] + 2 * integ_len + 2 * encr_len
    return skeyseed, split_keys(new_prf, prf_plus(new_prf, skeyseed, ni + nr + spi_i + spi_r, total),
                                integ_len, encr_len)

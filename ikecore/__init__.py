"""ikecore: IKEv2 with SA cloning, session resumption, MOBIKE, NAT-T and ESP.

The hot paths (prf/prf+, key schedules, SK payload protection, ESP) run in a C
core on OpenSSL EVP; everything else is Python.
"""
__version__ = "0.1.0"

"""One module per exchange concern. Each has an initiator task (build the
request, take the response) and a responder handler; only the connection
(``ikecore.protocol.ike_sa``) touches message IDs and retransmission."""
from __future__ import annotations

from ..constants import ExchangeType

# exchange type -> the module whose ``respond`` handles it: the import runs once, not per
# request; ``respond`` is looked up on every call, so a test may still replace it
_RESPONDER_MODULES: dict = {}


def responder_for(exchange_type: int):
    """The handler for a request of this exchange on an existing IKE SA, or None."""
    module = _RESPONDER_MODULES.get(exchange_type)
    if module is None:
        if exchange_type == ExchangeType.IKE_AUTH:
            from . import ike_auth as module
        elif exchange_type == ExchangeType.CREATE_CHILD_SA:
            from . import create_child_sa as module
        elif exchange_type == ExchangeType.INFORMATIONAL:
            from . import mobike as module        # informational.respond, plus MOBIKE's notifies
        else:
            return None
        _RESPONDER_MODULES[exchange_type] = module
    return module.respond

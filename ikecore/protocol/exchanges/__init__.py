"""One module per exchange concern. Each has an initiator task (build the
request, take the response) and a responder handler; only the connection
(``ikecore.protocol.ike_sa``) touches message IDs and retransmission."""
from __future__ import annotations

from ..constants import ExchangeType


def responder_for(exchange_type: int):
    """The handler for a request of this exchange on an existing IKE SA, or None."""
    if exchange_type == ExchangeType.IKE_AUTH:
        from .ike_auth import respond
    elif exchange_type == ExchangeType.CREATE_CHILD_SA:
        from .create_child_sa import respond
    elif exchange_type == ExchangeType.INFORMATIONAL:
        from .mobike import respond        # informational.respond, plus MOBIKE's notifies
    else:
        return None
    return respond

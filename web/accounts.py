"""M10's notice that an account on hold (needs reconnect) is usable again."""

from __future__ import annotations

from faust.web import Request, Response

from app.accounts import account_reconnected
from app.domain.errors import InvalidRequest
from app.domain.rules import check_platform
from app.faust_app import app

from . import schemas
from .auth import require_operator
from .errors import ApiView
from .items import authenticate, bounded

ACCOUNT = "/api/v1/distribution/accounts/{influencer_id}/{platform}"


@app.page(ACCOUNT + "/reconnected")
class AccountReconnected(ApiView):
    """Lifts the hold: the account's held posts on the platform are due at once. Operators
    only (M10 calls it with a service token holding the operator scope)."""

    async def post(self, request: Request, influencer_id: str, platform: str) -> Response:
        require_operator(await authenticate(request))
        longest = schemas.INFLUENCER_ID_MAX_LENGTH
        if not 1 <= len(influencer_id) <= longest:
            raise InvalidRequest(f"influencer_id must have 1 to {longest} characters",
                                 field="influencer_id")
        checked = check_platform(platform, "platform")
        released = await bounded(account_reconnected(app.pool, influencer_id, checked.value,
                                                     app.now()))
        return self.json({"influencer_id": influencer_id, "platform": checked.value,
                          "released": released})

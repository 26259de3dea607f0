"""The routes of second factors, built once for both APIs: auth-js `mfa.*` (enrol, challenge,
verify, unenrol TOTP factors) and `mfa.recoveryCodes.*`, in GoTrue's shapes. Each API gives
its way of knowing the caller and of answering the new session a verified code starts (aal2)."""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response

from ..accounts import Caller, Grant
from ..mfa import factors, recovery_codes
from ..services import Services
from .deps import ClientDep, ServicesDep
from .forms import body, documented
from .mfa_forms import (
    ChallengeForm,
    Enroll,
    RecoveryCode,
    RecoveryCodesName,
    VerifyCode,
    challenge_json,
    enrollment_json,
    recovery_codes_json,
    recovery_status_json,
)

CODES = "/factors/recovery-codes"
# How an API answers a grant: its session JSON (the original API may set the cookie instead).
SessionAnswer = Callable[[Services, Response, Grant], Awaitable[dict[str, Any]]]


def factor_router(
    require_caller: Callable[..., Awaitable[Caller]], answer: SessionAnswer, tag: str
) -> APIRouter:
    """The routes under `/factors`; `require_caller` is the API's caller dependency (this
    module evaluates annotations at once, so the routes see the local `CallerDep`)."""
    router = APIRouter(tags=[tag])
    CallerDep = Annotated[Caller, Depends(require_caller)]

    @router.post(
        CODES, summary="Generate recovery codes (aal2)", openapi_extra=documented(RecoveryCodesName)
    )
    async def generate_recovery_codes(
        services: ServicesDep,
        client: ClientDep,
        caller: CallerDep,
        form: Annotated[RecoveryCodesName, Depends(body(RecoveryCodesName))],
    ) -> dict[str, Any]:
        codes = await recovery_codes.generate(services, client, caller, form.friendly_name)
        return recovery_codes_json(codes)

    @router.post(CODES + "/regenerate", summary="Replace the recovery codes (aal2)")
    async def regenerate_recovery_codes(
        services: ServicesDep, client: ClientDep, caller: CallerDep
    ) -> dict[str, Any]:
        return recovery_codes_json(await recovery_codes.generate(services, client, caller))

    @router.get(CODES, summary="How many recovery codes are left")
    async def recovery_codes_status(services: ServicesDep, caller: CallerDep) -> dict[str, Any]:
        return recovery_status_json(*await recovery_codes.status(services, caller))

    @router.post(
        CODES + "/verify",
        summary="Use a recovery code: the session becomes aal2",
        openapi_extra=documented(RecoveryCode),
    )
    async def verify_recovery_code(
        services: ServicesDep,
        response: Response,
        client: ClientDep,
        caller: CallerDep,
        form: Annotated[RecoveryCode, Depends(body(RecoveryCode))],
    ) -> dict[str, Any]:
        granted = await recovery_codes.verify(services, client, caller, form.code)
        return await answer(services, response, granted)

    @router.delete(CODES, summary="Remove the recovery codes (aal2)")
    async def remove_recovery_codes(
        services: ServicesDep, client: ClientDep, caller: CallerDep
    ) -> dict[str, Any]:
        return {"id": await recovery_codes.remove(services, client, caller)}

    @router.post("/factors", summary="Enrol a TOTP factor", openapi_extra=documented(Enroll))
    async def enroll(
        services: ServicesDep,
        client: ClientDep,
        caller: CallerDep,
        form: Annotated[Enroll, Depends(body(Enroll))],
    ) -> dict[str, Any]:
        enrolled = await factors.enroll(services, client, caller, form.friendly_name, form.issuer)
        return enrollment_json(enrolled)

    @router.post(
        "/factors/{factor_id}/challenge",
        summary="Challenge a factor",
        openapi_extra=documented(ChallengeForm),
    )
    async def challenge(
        services: ServicesDep,
        client: ClientDep,
        caller: CallerDep,
        factor_id: str,
        form: Annotated[ChallengeForm, Depends(body(ChallengeForm))],
    ) -> dict[str, Any]:
        return challenge_json(await factors.challenge(services, client, caller, factor_id))

    @router.post(
        "/factors/{factor_id}/verify",
        summary="Answer a challenge with the app's code: the session becomes aal2",
        openapi_extra=documented(VerifyCode),
    )
    async def verify(
        services: ServicesDep,
        response: Response,
        client: ClientDep,
        caller: CallerDep,
        factor_id: str,
        form: Annotated[VerifyCode, Depends(body(VerifyCode))],
    ) -> dict[str, Any]:
        granted = await factors.verify(
            services, client, caller, factor_id, form.challenge_id, form.code
        )
        return await answer(services, response, granted)

    @router.delete("/factors/{factor_id}", summary="Unenrol a factor (aal2 for a verified one)")
    async def unenroll(
        services: ServicesDep, client: ClientDep, caller: CallerDep, factor_id: str
    ) -> dict[str, Any]:
        await factors.unenroll(services, client, caller, factor_id)
        return {"id": factor_id}

    return router

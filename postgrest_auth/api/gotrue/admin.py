"""GoTrue's admin API (`/admin/users`, `/admin/generate_link`, `/invite`) for callers holding a
key with the role `roles.service`: the server-side `auth.admin` of the Supabase clients."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel

from ...accounts import admin
from ...addresses import EmailAddress
from ...errors import Code, ServiceError, field_error, invalid
from ...mfa import factors
from ...tokens import InvalidToken
from ..caller import bearer_token
from ..deps import ClientDep, ServicesDep
from ..forms import Text, body, documented
from .links import verify_link
from .shapes import factor_json, full_user_json, user_json

router = APIRouter(tags=["gotrue admin"])
# What the service's tokens for an account carry and a key (`postgrest-auth keys`) does not.
USER_CLAIMS = frozenset({"sub", "count", "typ", "sid", "session_id"})


async def require_service_role(services: ServicesDep, request: Request) -> None:
    token = bearer_token(request)
    if token is None:
        raise ServiceError(Code.MISSING_CREDENTIALS, "This endpoint requires a Bearer token")
    try:
        claims = services.tokens.decode_key(token)
    except InvalidToken as exc:
        raise ServiceError(Code.INVALID_TOKEN, f"Bearer token refused: {exc}") from exc
    # A key names a role and no account: a user's token never opens the admin API, even where
    # roles.per_user could give an account a role named like roles.service.
    if claims.get("role") != services.settings.roles.service or USER_CLAIMS & claims.keys():
        raise ServiceError(Code.NOT_ADMIN, "User not allowed")


ServiceRole = [Depends(require_service_role)]


class AdminUser(BaseModel):
    email: EmailAddress | None = None
    phone: str | None = None
    password: Text | None = None
    email_confirm: bool | None = None
    user_metadata: dict[str, Any] | None = None
    app_metadata: dict[str, Any] | None = None
    ban_duration: str | None = None

    def changes(self) -> admin.Changes:
        return admin.Changes(
            email=self.email,
            password=self.password,
            email_confirm=self.email_confirm,
            user_metadata=self.user_metadata,
            app_metadata=self.app_metadata,
            ban_duration=self.ban_duration,
        )


class GenerateLink(BaseModel):
    type: Literal["signup", "magiclink", "recovery", "invite"]
    email: EmailAddress
    password: Text | None = None
    data: dict[str, Any] | None = None


class Invite(BaseModel):
    email: EmailAddress
    data: dict[str, Any] | None = None


def _number(name: str, value: str | None, default: int) -> int:
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise invalid([field_error(name, "must be a whole number")]) from None


def _refuse_phone(phone: str | None) -> None:
    if phone:
        raise ServiceError(Code.PHONE_DISABLED, "Phone accounts are not supported")


@router.get("/admin/users", dependencies=ServiceRole, summary="A page of users")
async def list_users(
    services: ServicesDep,
    request: Request,
    response: Response,
    page: str | None = None,
    per_page: str | None = None,
) -> dict[str, Any]:
    """The Python client sends `?page=&per_page=` when it has no preference."""
    page_number, size = _number("page", page, 1), _number("per_page", per_page, 50)
    users, total = await admin.list_users(services, page_number, size)
    response.headers["X-Total-Count"] = str(total)
    base = str(request.url.remove_query_params(["page", "per_page"]))
    last = max(1, -(-total // size))
    links = [f'<{base}?page={last}&per_page={size}>; rel="last"']
    if page_number < last:
        links.insert(0, f'<{base}?page={page_number + 1}&per_page={size}>; rel="next"')
    response.headers["Link"] = ", ".join(links)
    settings = services.settings
    return {"users": [user_json(settings, u) for u in users], "aud": settings.gotrue.aud}


@router.post(
    "/admin/users",
    dependencies=ServiceRole,
    summary="Create a user",
    openapi_extra=documented(AdminUser),
)
async def create_user(
    services: ServicesDep, client: ClientDep, form: Annotated[AdminUser, Depends(body(AdminUser))]
) -> dict[str, Any]:
    _refuse_phone(form.phone)
    if form.email is None:
        raise ServiceError(Code.VALIDATION_FAILED, "email is required")
    user = await admin.create_user(services, client, form.email, form.changes())
    return user_json(services.settings, user)


@router.get("/admin/users/{user_id}", dependencies=ServiceRole, summary="One user")
async def get_user(services: ServicesDep, user_id: str) -> dict[str, Any]:
    return await full_user_json(services, await admin.user_by_id(services, user_id))


@router.put(
    "/admin/users/{user_id}",
    dependencies=ServiceRole,
    summary="Change a user: email, password, email_confirm, metadata, ban_duration",
    openapi_extra=documented(AdminUser),
)
async def update_user(
    services: ServicesDep,
    client: ClientDep,
    user_id: str,
    form: Annotated[AdminUser, Depends(body(AdminUser))],
) -> dict[str, Any]:
    _refuse_phone(form.phone)
    user = await admin.update_user(services, client, user_id, form.changes())
    return user_json(services.settings, user)


@router.get(
    "/admin/users/{user_id}/factors", dependencies=ServiceRole, summary="A user's second factors"
)
async def list_factors(services: ServicesDep, user_id: str) -> list[dict[str, Any]]:
    user = await admin.user_by_id(services, user_id)
    async with services.pool.acquire() as conn:
        return [factor_json(f) for f in await services.factors.factors_of(conn, user["id"])]


@router.delete(
    "/admin/users/{user_id}/factors/{factor_id}",
    dependencies=ServiceRole,
    summary="Remove a user's second factor (a lost authenticator)",
)
async def delete_factor(
    services: ServicesDep, client: ClientDep, user_id: str, factor_id: str
) -> dict[str, Any]:
    user = await admin.user_by_id(services, user_id)
    removed = await factors.remove_by_admin(services, client, user["id"], factor_id)
    return factor_json(removed[0])


@router.delete("/admin/users/{user_id}", dependencies=ServiceRole, summary="Delete a user")
async def delete_user(services: ServicesDep, client: ClientDep, user_id: str) -> dict[str, Any]:
    await admin.delete_user(services, client, user_id)
    return {}


@router.post(
    "/admin/generate_link",
    dependencies=ServiceRole,
    summary="A link and code for your own mailer (nothing is mailed)",
    openapi_extra=documented(GenerateLink),
)
async def generate_link(
    services: ServicesDep,
    client: ClientDep,
    form: Annotated[GenerateLink, Depends(body(GenerateLink))],
    redirect_to: str | None = None,
) -> dict[str, Any]:
    generated = await admin.generate_link(
        services,
        client,
        form.type,
        form.email,
        form.password,
        form.data,
        verify_link(services.settings, redirect_to, None),
    )
    return {
        **user_json(services.settings, generated.user),
        "action_link": generated.action_link,
        "email_otp": generated.email_otp,
        "hashed_token": generated.hashed_token,
        "redirect_to": generated.redirect_to or "",
        "verification_type": generated.verification_type,
    }


@router.post(
    "/invite",
    dependencies=ServiceRole,
    summary="Make an account for an address and mail it an invitation",
    openapi_extra=documented(Invite),
)
async def invite(
    services: ServicesDep,
    client: ClientDep,
    form: Annotated[Invite, Depends(body(Invite))],
    redirect_to: str | None = None,
) -> dict[str, Any]:
    link = verify_link(services.settings, redirect_to, None)
    user = await admin.invite(services, client, form.email, form.data, link)
    return user_json(services.settings, user)

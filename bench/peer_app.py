"""fastapi-users 15 as its documentation builds it, the peer issue 13 measures the service against.

SQLAlchemy async over asyncpg, a User and an AccessToken table, and two authentication backends
side by side, each with its own FastAPIUsers so a route trusts one strategy only and its figures
stay clean: the JWT strategy (/auth/jwt/login, /jwt/users/me) and the database strategy
(/auth/db/login, /db/users/me). Passwords: bcrypt at the service's cost through pwdlib, not
fastapi-users' default argon2, so sign-ins compare like for like.

Served by uvicorn workers (`uvicorn bench.peer_app:app --workers N`), configured through the
environment; the tables are made once beforehand with `create_tables`."""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import AsyncGenerator
from typing import Annotated

from fastapi import Depends, FastAPI
from fastapi_users import BaseUserManager, FastAPIUsers, UUIDIDMixin, schemas
from fastapi_users.authentication import AuthenticationBackend, BearerTransport, JWTStrategy
from fastapi_users.authentication.strategy.db import AccessTokenDatabase, DatabaseStrategy
from fastapi_users.password import PasswordHelper
from fastapi_users_db_sqlalchemy import SQLAlchemyBaseUserTableUUID, SQLAlchemyUserDatabase
from fastapi_users_db_sqlalchemy.access_token import (
    SQLAlchemyAccessTokenDatabase,
    SQLAlchemyBaseAccessTokenTableUUID,
)
from pwdlib import PasswordHash
from pwdlib.hashers.bcrypt import BcryptHasher
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

DATABASE_URL = os.environ.get("PEER_DATABASE_URL", "postgresql+asyncpg:///peer")
# bench/peer.py hands every worker the same secret; the fallback only serves a lone import.
SECRET = os.environ.get("PEER_SECRET") or secrets.token_urlsafe(32)
BCRYPT_ROUNDS = int(os.environ.get("PEER_BCRYPT_ROUNDS", "10"))
POOL_SIZE = int(os.environ.get("PEER_POOL_SIZE", "8"))  # per worker, as the service's pool
LIFETIME = 3600


class Base(DeclarativeBase):
    pass


class User(SQLAlchemyBaseUserTableUUID, Base):
    pass


class AccessToken(SQLAlchemyBaseAccessTokenTableUUID, Base):
    pass


class UserRead(schemas.BaseUser[uuid.UUID]):
    pass


class UserCreate(schemas.BaseUserCreate):
    pass


class UserUpdate(schemas.BaseUserUpdate):
    pass


engine = create_async_engine(DATABASE_URL, pool_size=POOL_SIZE, max_overflow=2)
async_session_maker = async_sessionmaker(engine, expire_on_commit=False)


async def create_tables(database_url: str) -> None:
    """Once, before the workers start: several workers racing create_all would collide."""
    setup = create_async_engine(database_url)
    try:
        async with setup.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
    finally:
        await setup.dispose()


async def get_async_session() -> AsyncGenerator[AsyncSession, None]:
    async with async_session_maker() as session:
        yield session


async def get_user_db(
    session: Annotated[AsyncSession, Depends(get_async_session)],
) -> AsyncGenerator[SQLAlchemyUserDatabase[User, uuid.UUID], None]:
    yield SQLAlchemyUserDatabase(session, User)


async def get_access_token_db(
    session: Annotated[AsyncSession, Depends(get_async_session)],
) -> AsyncGenerator[SQLAlchemyAccessTokenDatabase[AccessToken], None]:
    yield SQLAlchemyAccessTokenDatabase(session, AccessToken)


password_helper = PasswordHelper(PasswordHash((BcryptHasher(rounds=BCRYPT_ROUNDS),)))


class UserManager(UUIDIDMixin, BaseUserManager[User, uuid.UUID]):
    reset_password_token_secret = SECRET
    verification_token_secret = SECRET


async def get_user_manager(
    user_db: Annotated[SQLAlchemyUserDatabase[User, uuid.UUID], Depends(get_user_db)],
) -> AsyncGenerator[UserManager, None]:
    yield UserManager(user_db, password_helper)


def get_jwt_strategy() -> JWTStrategy[User, uuid.UUID]:
    return JWTStrategy(secret=SECRET, lifetime_seconds=LIFETIME)


def get_database_strategy(
    access_token_db: Annotated[AccessTokenDatabase[AccessToken], Depends(get_access_token_db)],
) -> DatabaseStrategy[User, uuid.UUID, AccessToken]:
    return DatabaseStrategy(access_token_db, lifetime_seconds=LIFETIME)


jwt_backend = AuthenticationBackend(
    name="jwt",
    transport=BearerTransport(tokenUrl="auth/jwt/login"),
    get_strategy=get_jwt_strategy,
)
db_backend = AuthenticationBackend(
    name="db",
    transport=BearerTransport(tokenUrl="auth/db/login"),
    get_strategy=get_database_strategy,
)
jwt_users = FastAPIUsers[User, uuid.UUID](get_user_manager, [jwt_backend])
db_users = FastAPIUsers[User, uuid.UUID](get_user_manager, [db_backend])

app = FastAPI(title="fastapi-users peer")
app.include_router(jwt_users.get_auth_router(jwt_backend), prefix="/auth/jwt", tags=["auth"])
app.include_router(db_users.get_auth_router(db_backend), prefix="/auth/db", tags=["auth"])
app.include_router(
    jwt_users.get_register_router(UserRead, UserCreate), prefix="/auth", tags=["auth"]
)
app.include_router(
    jwt_users.get_users_router(UserRead, UserUpdate), prefix="/jwt/users", tags=["users"]
)
app.include_router(
    db_users.get_users_router(UserRead, UserUpdate), prefix="/db/users", tags=["users"]
)


@app.get("/health", include_in_schema=False)
async def health() -> dict[str, str]:
    """What bench/stack.py's `process` polls until the workers answer."""
    return {"status": "ok"}

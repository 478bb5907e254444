"""People and API clients: users with hashed passwords, bearer tokens stored as hashes,
and the one-time setup link printed when no user exists yet."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from engine.errors import AccountError
from engine.ids import utcnow
from engine.store.db import session_scope
from engine.store.models import ApiToken, User

MIN_PASSWORD_LEN = 8
TOKEN_PREFIX = "hw_"
SETUP_FILE = "setup.token"
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+$")


_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("not a real password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Accounts:
    def __init__(self, db: Engine):
        self.db = db

    # -- users ---------------------------------------------------------------------------
    def has_users(self) -> bool:
        with Session(self.db) as s:
            return s.exec(select(User.id).limit(1)).first() is not None

    def create_user(self, email: str, password: str) -> User:
        email = email.strip().lower()
        if not EMAIL_RE.match(email):
            raise AccountError(f"{email!r} is not an email address")
        if len(password) < MIN_PASSWORD_LEN:
            raise AccountError(f"password must be at least {MIN_PASSWORD_LEN} characters")
        with session_scope(self.db) as s:
            if s.exec(select(User).where(User.email == email)).first():
                raise AccountError(f"a user {email} exists already")
            user = User(email=email, password_hash=hash_password(password))
            s.add(user)
            s.flush()
            return user

    def set_password(self, email: str, password: str) -> User:
        """Give the user ``email`` a new password; every session opened with the old one
        ends at its next request (sessions carry a fingerprint of the password hash)."""
        if len(password) < MIN_PASSWORD_LEN:
            raise AccountError(f"password must be at least {MIN_PASSWORD_LEN} characters")
        with session_scope(self.db) as s:
            user = s.exec(select(User).where(User.email == email.strip().lower())).first()
            if user is None:
                raise AccountError(f"there is no user {email.strip().lower()}")
            user.password_hash = hash_password(password)
            s.add(user)
            s.flush()
            return user

    def authenticate(self, email: str, password: str) -> User | None:
        with session_scope(self.db) as s:
            user = s.exec(select(User).where(User.email == email.strip().lower())).first()
            if user is None:
                # Same work either way, so timing does not tell which emails exist.
                check_password(_DUMMY_HASH, password)
                return None
            if not check_password(user.password_hash, password):
                return None
            user.last_login_at = utcnow()
            s.add(user)
            return user

    def get_user(self, user_id: int) -> User | None:
        with Session(self.db) as s:
            return s.get(User, user_id)

    # -- API tokens ------------------------------------------------------------------------
    def create_token(self, name: str) -> str:
        """A new token; the plaintext is returned once and never stored."""
        name = name.strip()
        if not name:
            raise AccountError("a token needs a name")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with session_scope(self.db) as s:
            if s.exec(select(ApiToken).where(ApiToken.name == name)).first():
                raise AccountError(f"a token named {name!r} exists already")
            s.add(ApiToken(name=name, token_hash=_token_hash(token), prefix=token[:10]))
        return token

    def verify_token(self, token: str) -> ApiToken | None:
        if not token.startswith(TOKEN_PREFIX):
            return None
        with Session(self.db) as s:
            row = s.exec(select(ApiToken).where(ApiToken.token_hash == _token_hash(token))).first()
        return row

    def list_tokens(self) -> list[ApiToken]:
        with Session(self.db) as s:
            return list(s.exec(select(ApiToken).order_by(ApiToken.name)))

    def delete_token(self, name: str) -> bool:
        """Revoke a token; False when there is none of that name."""
        with session_scope(self.db) as s:
            row = s.exec(select(ApiToken).where(ApiToken.name == name)).first()
            if row is None:
                return False
            s.delete(row)
            return True


# -- the one-time setup link ---------------------------------------------------------------
def setup_token(data_dir: Path, *, create: bool = False) -> str | None:
    """The pending setup token (created when asked and missing)."""
    path = data_dir / SETUP_FILE
    if path.exists():
        return path.read_text().strip() or None
    if not create:
        return None
    data_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(24)
    path.write_text(token)
    path.chmod(0o600)
    return token


def check_setup_token(data_dir: Path, given: str) -> bool:
    expected = setup_token(data_dir)
    if not expected:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


def consume_setup_token(data_dir: Path) -> None:
    (data_dir / SETUP_FILE).unlink(missing_ok=True)

import hashlib
import logging
import secrets

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone
from django.utils.crypto import constant_time_compare

log = logging.getLogger(__name__)


class User(AbstractUser):
    """The site's user. Custom from the first migration so fields can be added later
    without a painful swap; e-mail is unique because password reset goes by it."""

    email = models.EmailField("email address", unique=True)

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"


class Share(models.Model):
    """`owner` lets `grantee` read their history. Checked on every request, so revoking
    (deleting the grant) takes effect at once."""

    owner = models.ForeignKey(User, on_delete=models.CASCADE, related_name="shares_given")
    grantee = models.ForeignKey(User, on_delete=models.CASCADE, related_name="shares_received")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["owner", "grantee"], name="unique_share")]
        indexes = [models.Index(fields=["grantee", "owner"], name="share_grantee")]

    def __str__(self):
        return f"{self.owner} -> {self.grantee}"

    @classmethod
    def allows(cls, owner, user) -> bool:
        return user.is_authenticated and cls.objects.filter(owner=owner, grantee=user).exists()

    @classmethod
    def sharing_owner(cls, username: str, user):
        """The active user `username` if they share their history with `user`, else None."""
        owner = User.objects.filter(username=username, is_active=True).first()
        return owner if owner is not None and cls.allows(owner, user) else None

    @classmethod
    def grant(cls, owner, username: str) -> "Share":
        """Raises ValidationError with a message for the owner when the grant cannot be made."""
        grantee = User.objects.filter(username__iexact=username.strip(), is_active=True).first()
        if grantee is None:
            raise ValidationError("There is no user with that username.")
        if grantee == owner:
            raise ValidationError("Your history is already yours.")
        share, created = cls.objects.get_or_create(owner=owner, grantee=grantee)
        if not created:
            raise ValidationError(f"You already share your history with {grantee.username}.")
        return share


class ApiToken(models.Model):
    """An API key for one client (a phone, a script). Only its SHA-256 is stored: the key is
    shown once. It stops working when the user is deactivated or changes their password (it
    is bound to the same hash Django uses to end sessions on a password change)."""

    # A request that authenticates records its time at most this often per token: a write per
    # request would cost the database more than the request itself.
    LAST_USED_EVERY = 300

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True, help_text="what the owner calls it")
    digest = models.CharField(max_length=64, unique=True)
    password_binding = models.CharField(max_length=128)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"API token {self.name or ''} of {self.user} ({self.created_at:%Y-%m-%d})"

    @staticmethod
    def hash(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()

    @classmethod
    def issue(cls, user, name: str = "") -> str:
        key = secrets.token_urlsafe(32)
        cls.objects.create(
            user=user,
            name=name.strip()[:100],
            digest=cls.hash(key),
            password_binding=user.get_session_auth_hash(),
        )
        return key

    @classmethod
    def user_for(cls, key: str):
        """The user a key authenticates, or None.

        Every API request asks this. With API_TOKEN_CACHE_SECONDS, a shared cache (Redis)
        remembers the answer, and anything that could change it forgets it at once: the token's
        deletion, and any save or deletion of its user (password, deactivation). The lifetime
        bounds what a write that bypasses those signals (a queryset update) could leave."""
        digest = cls.hash(key)
        user = cls.cached_user(digest)
        if user is not None:
            cls.note_use(digest)
            return user
        # Two point lookups on unique indexes: a join ($lookup) cost the embedded engine two
        # thirds of its time under load.
        token = cls.objects.filter(digest=digest).only("user_id", "password_binding").first()
        user = User.objects.filter(pk=token.user_id).first() if token else None
        if (
            user is None
            or not user.is_active
            or not constant_time_compare(token.password_binding, user.get_session_auth_hash())
        ):
            return None
        cls.remember_user(digest, user)
        cls.note_use(digest)
        return user

    @classmethod
    def note_use(cls, digest: str):
        """Record that the token was used, once per LAST_USED_EVERY seconds (the cache's add
        is the gate; without a cache, every use is recorded)."""
        try:
            first = cache.add(f"apitoken-used:{digest}", 1, cls.LAST_USED_EVERY)
        except Exception as exc:
            log.warning("token cache unavailable: %s", exc)
            first = True
        if first:
            cls.objects.filter(digest=digest).update(last_used_at=timezone.now())

    @staticmethod
    def cache_key(digest: str) -> str:
        return f"apitoken:{digest}"

    @classmethod
    def cached_user(cls, digest: str):
        if not settings.API_TOKEN_CACHE_SECONDS:
            return None
        try:
            return cache.get(cls.cache_key(digest))
        except Exception as exc:  # the cache is an optimisation: without it, ask the database
            log.warning("token cache unavailable: %s", exc)
            return None

    @classmethod
    def remember_user(cls, digest: str, user):
        """Cache `user` without its password hash (the field deferred): the cache need not hold
        one, and the rare request that reads it loads it from the database."""
        if not settings.API_TOKEN_CACHE_SECONDS:
            return
        fields = [
            field.attname for field in User._meta.concrete_fields if field.attname != "password"
        ]
        without_hash = User.from_db(
            user._state.db, fields, [getattr(user, name) for name in fields]
        )
        try:
            cache.set(cls.cache_key(digest), without_hash, settings.API_TOKEN_CACHE_SECONDS)
        except Exception as exc:
            log.warning("token cache unavailable: %s", exc)

    @classmethod
    def forget(cls, digests):
        """Drop cached answers for these token digests. A cache that cannot be reached fails
        the write that calls this, so a revoked token is never left answering."""
        if settings.API_TOKEN_CACHE_SECONDS:
            cache.delete_many([cls.cache_key(digest) for digest in digests])


@receiver(post_delete, sender=ApiToken)
def forget_deleted_token(sender, instance, **kwargs):
    ApiToken.forget([instance.digest])


@receiver([post_save, post_delete], sender=User)
def forget_tokens_of_changed_user(sender, instance, **kwargs):
    if settings.API_TOKEN_CACHE_SECONDS:
        ApiToken.forget(
            ApiToken.objects.filter(user_id=instance.pk).values_list("digest", flat=True)
        )

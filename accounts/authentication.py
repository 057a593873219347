from rest_framework import authentication, exceptions

from accounts.models import ApiToken


class TokenAuthentication(authentication.TokenAuthentication):
    """`Authorization: Token <key>` against ApiToken (hashed keys, bound to the password)."""

    def authenticate_credentials(self, key):
        user = ApiToken.user_for(key)
        if user is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked token.")
        return user, key

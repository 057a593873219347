from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    """The site's user. Custom from the first migration so fields can be added later
    without a painful swap; e-mail is unique because password reset goes by it."""

    email = models.EmailField("email address", unique=True)

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"

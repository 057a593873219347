"""REST API v1: registration, tokens, the caller's profile."""

from django.contrib.auth import authenticate
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import throttle
from accounts.authentication import TokenAuthentication
from accounts.models import ApiToken, Share, User
from imageclass import api_examples as examples


class UserSerializer(serializers.ModelSerializer):
    id = serializers.CharField(read_only=True)  # an ObjectId, as text

    class Meta:
        model = User
        fields = ("id", "username", "email", "first_name", "last_name", "date_joined")
        read_only_fields = fields


class RegisterSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    email = serializers.EmailField()
    password = serializers.CharField(write_only=True, style={"input_type": "password"})

    def validate_username(self, value):
        User.username_validator(value)
        if User.objects.filter(username__iexact=value).exists():
            raise serializers.ValidationError("A user with that username already exists.")
        return value

    def validate_email(self, value):
        if User.objects.filter(email__iexact=value).exists():
            raise serializers.ValidationError("An account with this email address already exists.")
        return value

    def validate(self, data):
        try:
            validate_password(
                data["password"], User(username=data["username"], email=data["email"])
            )
        except DjangoValidationError as exc:
            raise serializers.ValidationError({"password": exc.messages}) from None
        return data

    def create(self, data):
        return User.objects.create_user(data["username"], data["email"], data["password"])


class CredentialsSerializer(serializers.Serializer):
    username = serializers.CharField()
    password = serializers.CharField(write_only=True, style={"input_type": "password"})
    name = serializers.CharField(
        required=False,
        max_length=100,
        default="",
        help_text="what to call the token on the profile page, such as the device using it",
    )


TokenSerializer = inline_serializer("Token", {"token": serializers.CharField()})


class RegisterView(APIView):
    permission_classes = [AllowAny]
    authentication_classes = []
    throttle_scope = "auth"

    @extend_schema(
        request=RegisterSerializer,
        responses={201: UserSerializer},
        summary="Create an account",
        examples=examples.REGISTER,
    )
    def post(self, request):
        serializer = RegisterSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = serializer.save()
        return Response(UserSerializer(user).data, status=status.HTTP_201_CREATED)


class TokenView(APIView):
    """POST credentials for a new token; DELETE revokes the token the request uses."""

    permission_classes = [AllowAny]
    throttle_scope = "auth"

    @extend_schema(
        request=CredentialsSerializer,
        responses={200: TokenSerializer},
        summary="Obtain a token",
        examples=examples.TOKEN,
    )
    def post(self, request):
        serializer = CredentialsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        credentials = serializer.validated_data
        try:
            user = throttle.attempt(
                credentials["username"],
                throttle.client_address(request),
                lambda: authenticate(
                    request, username=credentials["username"], password=credentials["password"]
                ),
            )
        except throttle.LockedOut as locked:
            raise exceptions.Throttled(locked.seconds, "Too many failed login attempts.") from None
        if user is None:
            raise exceptions.AuthenticationFailed("Wrong username or password.")
        return Response({"token": ApiToken.issue(user, credentials["name"])})

    @extend_schema(request=None, responses={204: None}, summary="Revoke the token of this request")
    def delete(self, request):
        if not isinstance(request.successful_authenticator, TokenAuthentication):
            raise exceptions.NotAuthenticated(
                "Send the token to revoke in the Authorization header."
            )
        ApiToken.objects.filter(digest=ApiToken.hash(request.auth)).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(APIView):
    throttle_scope = "read"

    @extend_schema(responses=UserSerializer, summary="The caller's profile", examples=examples.ME)
    def get(self, request):
        return Response(UserSerializer(request.user).data)


class ShareSerializer(serializers.ModelSerializer):
    id = serializers.CharField(read_only=True)
    owner = serializers.CharField(source="owner.username", read_only=True)
    grantee = serializers.CharField(source="grantee.username", read_only=True)

    class Meta:
        model = Share
        fields = ("id", "owner", "grantee", "created_at")
        read_only_fields = fields


class GrantSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)


class ShareListView(APIView):
    throttle_scope = "read"

    """Grants I gave and grants I received; POST {username} to share my history."""

    @extend_schema(
        responses=inline_serializer(
            "Shares", {"given": ShareSerializer(many=True), "received": ShareSerializer(many=True)}
        ),
        summary="Grants I gave and received",
        examples=examples.SHARES,
    )
    def get(self, request):
        given = Share.objects.filter(owner=request.user).select_related("owner", "grantee")
        received = Share.objects.filter(grantee=request.user).select_related("owner", "grantee")
        return Response(
            {
                "given": ShareSerializer(given, many=True).data,
                "received": ShareSerializer(received, many=True).data,
            }
        )

    @extend_schema(
        request=GrantSerializer,
        responses={201: ShareSerializer},
        summary="Share my history with a user",
        examples=examples.GRANT,
    )
    def post(self, request):
        serializer = GrantSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            share = Share.grant(request.user, serializer.validated_data["username"])
        except DjangoValidationError as exc:
            raise serializers.ValidationError({"username": exc.messages}) from None
        return Response(ShareSerializer(share).data, status=status.HTTP_201_CREATED)


class ShareDetailView(APIView):
    throttle_scope = "read"

    @extend_schema(responses={204: None}, summary="Revoke a grant I gave")
    def delete(self, request, pk):
        try:
            deleted, _ = Share.objects.filter(pk=pk, owner=request.user).delete()
        except (DjangoValidationError, ValueError, TypeError):
            deleted = 0
        if not deleted:
            raise exceptions.NotFound()
        return Response(status=status.HTTP_204_NO_CONTENT)

"""ImageClass settings: one module, driven by environment variables (see .env.example).

Every value has a default that works on a developer machine with nothing else running
(the embedded database, local files, console email).
"""

import secrets
from pathlib import Path

from csp.constants import NONE, SELF, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured

from imageclass.addresses import embedded_redis_url, embedded_uri
from imageclass.env import (
    env_bool,
    env_float,
    env_int,
    env_list,
    env_path,
    env_required,
    env_str,
    load_dotenv,
)
from imageclass.storage import s3_storages

BASE_DIR = Path(__file__).resolve().parent.parent
load_dotenv(BASE_DIR / ".env")

VAR_DIR = env_path("VAR_DIR", BASE_DIR / "var")
SHARED_CIFAR10_ARCHIVE = env_path(
    "SHARED_CIFAR10_ARCHIVE", BASE_DIR.parent / "shared" / "datasets" / "cifar10-train-jpeg.tar.gz"
)


def _local_secret_key() -> str:
    """A random key kept in var/, so sessions survive restarts of the embedded setup."""
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


# DJANGO_ENV=production (the docker/ images) demands real secrets and hosts, and turns on
# HTTPS-only cookies, HSTS, the SSL redirect and JSON logs; development keeps local defaults.
DJANGO_ENV = env_str("DJANGO_ENV", "development", choices=("development", "production"))
PRODUCTION = DJANGO_ENV == "production"

DEBUG = env_bool("DEBUG", False)
if PRODUCTION and DEBUG:
    raise ImproperlyConfigured("DEBUG=true is not allowed with DJANGO_ENV=production")
SECRET_KEY = (
    env_required("SECRET_KEY") if PRODUCTION else env_str("SECRET_KEY") or _local_secret_key()
)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [] if PRODUCTION else ["127.0.0.1", "localhost", "[::1]"])
if not ALLOWED_HOSTS:
    raise ImproperlyConfigured(
        "ALLOWED_HOSTS must name the site's host(s) with DJANGO_ENV=production"
    )
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
SITE_NAME = env_str("SITE_NAME", "ImageClass")

INSTALLED_APPS = [
    "imageclass.apps.MongoAdminConfig",
    "imageclass.apps.MongoAuthConfig",
    "imageclass.apps.MongoContentTypesConfig",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_mongodb_backend",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "csp",
    "imageclass.apps.ImageClassConfig",
    "accounts",
    "classifier",
    "mltrain",
]
# Contrib apps' migrations are generated for ObjectIdAutoField, as django-mongodb-backend
# documents: their own migrations use integer ids.
MIGRATION_MODULES = {
    "admin": "mongo_migrations.admin",
    "auth": "mongo_migrations.auth",
    "contenttypes": "mongo_migrations.contenttypes",
}
DEFAULT_AUTO_FIELD = "django_mongodb_backend.fields.ObjectIdAutoField"

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "imageclass.middleware.ServiceUnavailableMiddleware",  # last: sees the views' exceptions first
]

# Content-Security-Policy on every page (django-csp): scripts only from this site's own files,
# so an injected inline script does not run. Inline style attributes stay allowed: Django's
# admin and Bootstrap's components write them, and a style cannot run code. Images also come as
# data: URIs (the admin's quality pages) and blob: URIs (upload previews).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, UNSAFE_INLINE],
        "img-src": [SELF, "data:", "blob:"],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}

ROOT_URLCONF = "imageclass.urls"
WSGI_APPLICATION = "imageclass.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "imageclass.context_processors.site",
            ],
        },
    },
]

# Database: MongoDB. Unset MONGODB_URI means the embedded server that `make run` starts
# (python -m imageclass.embedded) on EMBEDDED_MONGODB_PORT with its data in var/db.
EMBEDDED_MONGODB_PORT = env_int("EMBEDDED_MONGODB_PORT", 27027, minimum=1, maximum=65535)
MONGODB_URI = env_required("MONGODB_URI") if PRODUCTION else env_str("MONGODB_URI")
DATABASES = {
    "default": {
        "ENGINE": "imageclass.mongodb",  # django_mongodb_backend with one fix (see there)
        "HOST": MONGODB_URI or embedded_uri(EMBEDDED_MONGODB_PORT),
        "NAME": env_str("MONGODB_NAME", "imageclass"),
        "OPTIONS": {
            # Fail fast when the server is away: /readyz and requests answer 503 in seconds.
            "serverSelectionTimeoutMS": env_int("MONGODB_TIMEOUT_MS", 5000, minimum=100),
        },
    },
}

# Redis: the broker, the shared cache and the signal that wakes ?wait= requests. Unset
# REDIS_URL means the embedded one that `make run` starts (python -m imageclass.embedded) on
# EMBEDDED_REDIS_PORT with its snapshots in var/redis.
EMBEDDED_REDIS_PORT = env_int("EMBEDDED_REDIS_PORT", 6389, minimum=1, maximum=65535)
_redis_url = env_required("REDIS_URL") if PRODUCTION else env_str("REDIS_URL")
EMBEDDED_REDIS = not _redis_url
REDIS_URL = _redis_url or embedded_redis_url(EMBEDDED_REDIS_PORT)
CACHES = {"default": {"BACKEND": "imageclass.cache.RedisCache", "LOCATION": REDIS_URL}}
# Seconds any use of Redis (cache, throttles, lockouts, announcements, the broker) waits to
# connect or for an answer; one that times out stops this process asking for REDIS_RETRY_AFTER
# seconds (imageclass.cache), so a stalled Redis costs a request one timeout, not one each.
REDIS_TIMEOUT = env_float("REDIS_TIMEOUT", 1.0, minimum=0.1, maximum=30)
REDIS_RETRY_AFTER = env_float("REDIS_RETRY_AFTER", 5.0, minimum=0, maximum=300)
# Seconds the cache remembers which user an API token authenticates (accounts.ApiToken.user_for),
# saving two database reads per API request. Only a shared cache (Redis) can: every web process
# must forget a revoked token together.
API_TOKEN_CACHE_SECONDS = env_int("API_TOKEN_CACHE_SECONDS", 60, minimum=0)
# Seconds a read of an unfinished job waits for its end when the client gives no ?wait= (a long
# poll): a client that polls in a loop costs about one request per result instead of dozens.
# At most classifier.notify.MAX_WAIT; 0 answers every poll at once.
API_POLL_WAIT = env_float("API_POLL_WAIT", 2.0, minimum=0, maximum=10)

AUTH_USER_MODEL = "accounts.User"
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": env_int("PASSWORD_MIN_LENGTH", 10, minimum=8)},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "profile"
LOGOUT_REDIRECT_URL = "home"
# Login lockouts in layers (accounts.throttle), counted over a window of LOGIN_LOCKOUT_SECONDS:
# an (account, address) pair is locked after LOGIN_FAILURE_LIMIT failures, first for
# LOGIN_PAIR_LOCK_SECONDS, doubling up to the window; an address after
# LOGIN_ADDRESS_FAILURE_LIMIT failures over any accounts; an account after
# LOGIN_ACCOUNT_FAILURE_LIMIT failures over any addresses takes one attempt per
# LOGIN_ACCOUNT_DELAY_SECONDS from addresses it never logged in from.
LOGIN_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
LOGIN_LOCKOUT_SECONDS = env_int("LOGIN_LOCKOUT_SECONDS", 900, minimum=1)
LOGIN_PAIR_LOCK_SECONDS = env_int("LOGIN_PAIR_LOCK_SECONDS", 60, minimum=1)
LOGIN_ADDRESS_FAILURE_LIMIT = env_int("LOGIN_ADDRESS_FAILURE_LIMIT", 30, minimum=1)
LOGIN_ACCOUNT_FAILURE_LIMIT = env_int("LOGIN_ACCOUNT_FAILURE_LIMIT", 100, minimum=1)
LOGIN_ACCOUNT_DELAY_SECONDS = env_int("LOGIN_ACCOUNT_DELAY_SECONDS", 5, minimum=1)
# Password reset mails: per client address, and per target email (silently: the answer is the
# same whether or not an account has that email), as "N/minute|hour|day".
PASSWORD_RESET_RATE_ADDRESS = env_str("PASSWORD_RESET_RATE_ADDRESS", "10/hour")
PASSWORD_RESET_RATE_EMAIL = env_str("PASSWORD_RESET_RATE_EMAIL", "3/hour")
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 14 * 24 * 3600, minimum=60)

EMAIL_HOST = env_str("EMAIL_HOST")
if EMAIL_HOST:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_PORT = env_int("EMAIL_PORT", 587, minimum=1, maximum=65535)
    EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
    EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
    EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
else:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "ImageClass <noreply@localhost>")

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# Files: uploaded images ("default") and model artifacts ("models"), local folders by default.
MEDIA_ROOT = env_path("MEDIA_ROOT", VAR_DIR / "media")
MODELS_ROOT = env_path("MODELS_ROOT", VAR_DIR / "models")
STORAGES = {
    "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": MEDIA_ROOT},
    },
    "models": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": MODELS_ROOT},
    },
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Object storage (MinIO or any S3): both buckets private, every key written once, images
# served only through the access-checked views (signed URLs expire after S3_URL_EXPIRE seconds).
S3_ENDPOINT_URL = env_str("S3_ENDPOINT_URL")
if S3_ENDPOINT_URL:
    STORAGES |= s3_storages(
        endpoint_url=S3_ENDPOINT_URL,
        access_key=env_required("S3_ACCESS_KEY"),
        secret_key=env_required("S3_SECRET_KEY"),
        region_name=env_str("S3_REGION", "us-east-1"),
        media_bucket=env_str("S3_MEDIA_BUCKET", "imageclass-media"),
        models_bucket=env_str("S3_MODELS_BUCKET", "imageclass-models"),
        url_expire=env_int("S3_URL_EXPIRE", 300, minimum=10, maximum=7 * 24 * 3600),
    )
# Above the form's 20-image limit, so 21 files get a friendly message; a flood gets a bare 400.
DATA_UPLOAD_MAX_NUMBER_FILES = 25
# REST API v1: token or session authentication, authenticated by default, JSON errors.
# Throttle rates ("N/second|minute|hour|day") per user, or per address when anonymous.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    # Per user (per address when anonymous) at "<scope>", and per address whoever is logged in
    # at "<scope>_address", in one Redis round trip.
    "DEFAULT_THROTTLE_CLASSES": ["imageclass.throttling.WindowThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "auth": env_str("API_THROTTLE_AUTH", "20/minute"),
        "upload": env_str("API_THROTTLE_UPLOAD", "60/minute"),
        "read": env_str("API_THROTTLE_READ", "600/minute"),
        "auth_address": env_str("API_THROTTLE_AUTH_ADDRESS", "60/minute"),
        "upload_address": env_str("API_THROTTLE_UPLOAD_ADDRESS", "180/minute"),
        "read_address": env_str("API_THROTTLE_READ_ADDRESS", "1800/minute"),
    },
    # Client addresses come from REMOTE_ADDR, or from X-Forwarded-For as set by this many
    # trusted proxies in front; never from a header the client chose.
    "NUM_PROXIES": env_int("API_NUM_PROXIES", 0, minimum=0),
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "ImageClass API",
    "DESCRIPTION": "Image classification for mobile clients. Authenticate with `Authorization: Token <key>`.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",  # assets served from this site: the docs work offline
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # Deep links put a link inside each operation's toggle button: controls nested in controls
    # that screen readers and keyboards handle badly (axe-core: nested-interactive).
    "SWAGGER_UI_SETTINGS": {"deepLinking": False},
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "imageclass.openapi.add_error_responses",
    ],
}

# Uploads and URL fetches: every byte is untrusted (see classifier.validation, classifier.fetcher).
MAX_UPLOAD_BYTES = env_int("MAX_UPLOAD_MB", 10, minimum=1, maximum=100) * 1024 * 1024
MAX_IMAGE_PIXELS = env_int("MAX_IMAGE_MEGAPIXELS", 40, minimum=1, maximum=200) * 1_000_000
FETCH_CONNECT_TIMEOUT = env_float("FETCH_CONNECT_TIMEOUT", 5.0, minimum=0.1, maximum=60)
FETCH_READ_TIMEOUT = env_float("FETCH_READ_TIMEOUT", 10.0, minimum=0.1, maximum=120)
FETCH_MAX_REDIRECTS = env_int("FETCH_MAX_REDIRECTS", 3, minimum=0, maximum=10)
# Training datasets uploaded in the admin (zip of class folders; see mltrain.archive).
TRAINING_ZIP_MAX_BYTES = env_int("TRAINING_ZIP_MAX_MB", 500, minimum=1) * 1024 * 1024
TRAINING_ZIP_MAX_FILES = env_int("TRAINING_ZIP_MAX_FILES", 50_000, minimum=2)
# Images in a zip are already compressed (JPEG, PNG, WebP): a real dataset unpacks to about its
# archive's size, BMPs to a few times it. One job needs at most twice the largest archive.
TRAINING_ZIP_MAX_UNPACKED_BYTES = (
    env_int("TRAINING_ZIP_MAX_UNPACKED_MB", 1024, minimum=1) * 1024 * 1024
)
# The whole archive may unpack to at most this many times its compressed members (past 16 MiB).
TRAINING_ZIP_MAX_EXPANSION = env_int("TRAINING_ZIP_MAX_EXPANSION", 20, minimum=2)

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or REDIS_URL
# With late acks an unacknowledged message returns to the queue after this long.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600, minimum=60),
    "socket_timeout": REDIS_TIMEOUT,
    "socket_connect_timeout": REDIS_TIMEOUT,
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_TIMEOUT = env_float(
    "CELERY_BROKER_CONNECTION_TIMEOUT", REDIS_TIMEOUT, minimum=0.1
)
# One retry of a publish (a pooled connection to a restarted broker fails once), not Celery's
# three: with a stalled broker each try waits REDIS_TIMEOUT.
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.2,
}
CELERY_TASK_IGNORE_RESULT = True  # results live in MongoDB
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_QUEUE", "inference")
# Training and exports run on their own worker (`--queues training`): an hour-long run must
# never hold up classification.
TRAINING_QUEUE = "training"
CELERY_TASK_ROUTES = {
    # The sweep for abandoned training jobs runs where a worker always listens.
    "mltrain.tasks.sweep_abandoned_jobs": {"queue": CELERY_TASK_DEFAULT_QUEUE},
    "mltrain.tasks.*": {"queue": TRAINING_QUEUE},
}
CELERY_WORKER_CONCURRENCY = env_int("CELERY_WORKER_CONCURRENCY", 1, minimum=1)
# Seconds a new pool process (one replacing a killed one, too) has to start: it preloads the
# model first (PRELOAD_MODEL), which took 10 s on a 2-core AVX2 host, and Celery's default of
# 4 s killed every replacement there before it could take a job.
CELERY_WORKER_PROC_ALIVE_TIMEOUT = 120.0
CLASSIFY_SOFT_TIME_LIMIT = env_int("CLASSIFY_SOFT_TIME_LIMIT", 60, minimum=1)
CLASSIFY_TIME_LIMIT = env_int("CLASSIFY_TIME_LIMIT", 90, minimum=2)
CLASSIFY_MAX_RETRIES = env_int("CLASSIFY_MAX_RETRIES", 5, minimum=0)  # transient errors
CLASSIFY_MAX_ATTEMPTS = env_int("CLASSIFY_MAX_ATTEMPTS", 3, minimum=1)  # deliveries that started
# A worker takes up to this many queued jobs into one model call (1: no batching).
CLASSIFY_BATCH_SIZE = env_int("CLASSIFY_BATCH_SIZE", 16, minimum=1)
SWEEP_INTERVAL = env_int("SWEEP_INTERVAL", 60, minimum=5)  # seconds between stuck-job sweeps
SWEEP_MAX_REQUEUES = env_int("SWEEP_MAX_REQUEUES", 3, minimum=0)
# A training job that has shown no progress (a started epoch or phase) for this long lost its
# worker: the sweep fails it, and a retry resumes from its checkpoints.
TRAINING_STALE_AFTER = env_int("TRAINING_STALE_AFTER", 3 * 3600, minimum=60)
CELERY_BEAT_SCHEDULE = {
    "sweep-stuck-classifications": {
        "task": "classifier.tasks.sweep_stuck_jobs",
        "schedule": SWEEP_INTERVAL,
    },
    "sweep-abandoned-training": {
        "task": "mltrain.tasks.sweep_abandoned_jobs",
        "schedule": 10 * SWEEP_INTERVAL,
    },
    "purge-old-trash": {"task": "classifier.tasks.purge_old_trash", "schedule": 3600},
}
# Deleted results wait this many days in their owner's trash (restorable), then are purged.
TRASH_DAYS = env_int("TRASH_DAYS", 30, minimum=0)
TOP_K = env_int("TOP_K", 3, minimum=1)
# A heatmap asked for but not made within this many seconds is asked for again.
HEATMAP_RETRY_AFTER = env_int("HEATMAP_RETRY_AFTER", 60, minimum=5)
# An export (TFLite, ONNX) asked for but not built within this many seconds is asked for again.
EXPORT_RETRY_AFTER = env_int("EXPORT_RETRY_AFTER", 900, minimum=30)

# Results whose top probability is below this are flagged "uncertain"; unset, each model
# version's own threshold (from its validation images: answers at or above it right at least
# 95% of the time; 0.5 for versions published before reports fitted one).
UNCERTAIN_BELOW = env_float("UNCERTAIN_BELOW", None, minimum=0, maximum=1)

# The trained models committed with the project, oldest first: a new registry publishes each
# under SHIPPED_MODEL_NAME (v1, v2, ...) and activates the last; a registry that lacks one
# registers it inactive.
SHIPPED_MODEL_DIRS = [BASE_DIR / "mltrain" / "shipped" / "cifar10"]
SHIPPED_MODEL_NAME = env_str("SHIPPED_MODEL_NAME", "cifar10")
# Our from-scratch CIFAR-10 network among them: the default backbone of
# `train_transfer --backbone imageclass` and the recipe `bench/training.py` times.
SHIPPED_MODEL_DIR = env_path("SHIPPED_MODEL_DIR", SHIPPED_MODEL_DIRS[0])
# Register the general model (EfficientNet-Lite0, ImageNet's 1,000 classes; inactive) beside the
# shipped one on first run. Building it takes about a minute once per machine.
GENERAL_MODEL = env_bool("GENERAL_MODEL", True)
# Where workers keep local copies of model artifacts (Keras loads from a file).
MODEL_CACHE_DIR = env_path("MODEL_CACHE_DIR", VAR_DIR / "model-cache")
# litert-int8: the active Keras model converted once to LiteRT (XNNPACK) with int8 weights,
# where its training report found that copy answers as the model does (else fp32 LiteRT);
# litert: fp32 LiteRT, much faster than Keras at batch 1; keras: the Keras model itself.
INFERENCE_RUNTIME = env_str(
    "INFERENCE_RUNTIME", "litert-int8", choices=("litert-int8", "litert", "keras")
)
# Load the active model in every worker process as it starts, so the first job does not wait
# for it; off for workers that never classify (the training queue's).
PRELOAD_MODEL = env_bool("PRELOAD_MODEL", True)

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env_path("STATIC_ROOT", VAR_DIR / "static")
STATIC_ROOT.mkdir(
    parents=True, exist_ok=True
)  # collectstatic's target; WhiteNoise wants it present
if PRODUCTION:
    # The image runs collectstatic at build time: hashed names, compressed, cached forever.
    STORAGES["staticfiles"] = {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"}
else:
    WHITENOISE_USE_FINDERS = True  # serve straight from the app folders without collectstatic

if PRODUCTION:
    # TLS ends at the proxy in front, which says so in X-Forwarded-Proto.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]  # container health checks speak plain HTTP
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 365 * 24 * 3600, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)

# Logs go to stdout (the container runtime collects them): one JSON object per line in
# production, readable lines in development.
LOG_FORMAT = env_str("LOG_FORMAT", "json" if PRODUCTION else "plain", choices=("json", "plain"))
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {"()": "imageclass.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": LOG_FORMAT,
        }
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}

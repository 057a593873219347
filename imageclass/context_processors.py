from django.conf import settings


def site(request):
    # Not "site_name": Django's auth views put the request's host under that name.
    return {"brand": settings.SITE_NAME}

from rest_framework.throttling import ScopedRateThrottle


class AddressRateThrottle(ScopedRateThrottle):
    """The view's throttle scope counted per client address as well, whoever is logged in:
    one address cannot multiply its rate with many accounts. Rates: "<scope>_address"."""

    def get_rate(self):
        return self.THROTTLE_RATES.get(f"{self.scope}_address")

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": f"{self.scope}_address", "ident": self.get_ident(request)}

"""django-mongodb-backend, with case-insensitive exact matches escaped.

django-mongodb-backend 5.2.4 turns `iexact` into a regular expression but escapes only the
pattern lookups (contains, startswith, ...): Django's BaseDatabaseOperations binds
prep_for_iexact_query to its own prep_for_like_query, not to the backend's override. Left as
is, user input in an iexact lookup is a live regular expression: sharing with "b.*" would
match "bob", and "*x" answers 500. Remove this module once the backend escapes it itself.
"""

import re

from django_mongodb_backend import base
from django_mongodb_backend.operations import DatabaseOperations as MongoOperations


class DatabaseOperations(MongoOperations):
    def prep_for_iexact_query(self, x):
        return re.escape(x)


class DatabaseWrapper(base.DatabaseWrapper):
    ops_class = DatabaseOperations

"""Plain pymongo reads, inserts and conditional updates of ORM records, converted as the ORM
converts them, for the hot paths where the ORM's compiled queries cost too much (or where the
embedded engine would answer them with a scan)."""

from django.db import connection, models
from pymongo import UpdateOne


class PlainDocuments:
    """Records read by id and inserted with plain pymongo calls, converted as the ORM converts
    what it reads and writes: the ORM compiles an aggregation pipeline for each read by id
    (three times the client's CPU of a find_one). Results are read this way on the hot paths (a
    poll, the answer after a wait, a worker's jobs) and uploads inserted."""

    @classmethod
    def by_pk(cls, pk):
        """The record, or DoesNotExist; ValidationError for a value that is no id at all."""
        document = connection.database[cls._meta.db_table].find_one(
            {"_id": cls._meta.pk.to_python(pk)}
        )
        if document is None:
            raise cls.DoesNotExist(f"No {cls._meta.object_name} with id {pk}.")
        return cls.from_document(document)

    @classmethod
    def by_pks(cls, pks) -> list:
        """The records of those ids that exist, in no particular order."""
        ids = [cls._meta.pk.to_python(pk) for pk in pks]
        return [
            cls.from_document(found)
            for found in connection.database[cls._meta.db_table].find({"_id": {"$in": ids}})
        ]

    @classmethod
    def insert(cls, **values):
        """A new record, written with one insert_one of its fields as the ORM stores them
        (defaults and pre_save included), without the rest of the ORM's save: no signals are
        sent, and nothing listens for them on these models. Uploads are recorded this way:
        the ORM's create cost nearly twice the CPU, a fifth of the web's under load."""
        record = cls(**values)
        document = {
            field.column: field.get_db_prep_save(field.pre_save(record, True), connection)
            for field in cls._meta.concrete_fields
            if not field.primary_key
        }
        record.pk = connection.database[cls._meta.db_table].insert_one(document).inserted_id
        record._state.adding, record._state.db = False, connection.alias
        return record

    @classmethod
    def from_document(cls, document: dict):
        """The record that a stored document (as find returns it) holds."""
        fields = cls._meta.concrete_fields
        values = []
        for field, converters in zip(fields, cls._converters()):
            value = document.get(field.column)
            for converter in converters:
                value = converter(value, field, connection)
            values.append(value)
        return cls.from_db(connection.alias, [field.attname for field in fields], values)

    @classmethod
    def _converters(cls) -> list:
        """Each concrete field's converters from database values, in field order, as the
        ORM's compiler finds them (backend's, then the field's own). Found once: they depend
        on the fields and the database's settings only, the same in every thread, and finding
        them costs a quarter of the read."""
        if "field_converters" not in cls.__dict__:
            columns = [field.get_col(cls._meta.db_table) for field in cls._meta.concrete_fields]
            cls.field_converters = [
                connection.ops.get_db_converters(column) + column.get_db_converters(connection)
                for column in columns
            ]
        return cls.field_converters


class ConditionalUpdates:
    """For models whose records move between states, claimed by one worker at a time."""

    def transition(self, condition: dict, increment=(), **changes) -> bool:
        """Apply `changes` (and +1 to the `increment` fields) only while the stored record meets
        `condition` (a MongoDB filter): True when it did, and the instance then holds the
        changes, with no reload. The counters must also still hold the instance's values, so
        its incremented copies are exact.

        One update_one on the plain _id, which every engine answers from the _id index: the
        ORM's update spells the filter as $and, which the embedded engine answers by scanning
        every record (and its find_one_and_update costs several updates)."""
        query, update = self._conditional_update(condition, increment, changes)
        if connection.database[self._meta.db_table].update_one(query, update).matched_count != 1:
            return False
        self._apply(increment, changes)
        return True

    @classmethod
    def transition_many(cls, moves: list) -> list[bool]:
        """`transition` for many records in one round trip: `moves` holds (instance, condition,
        increment, changes) tuples, and the answers come in their order. MongoDB 8's bulkWrite
        command says of each update whether it matched (a collection's bulk_write only counts
        them all). One by one, a batch's claims and finishes took most of the worker's time."""
        if not moves:
            return []
        namespace = f"{connection.database.name}.{cls._meta.db_table}"
        updates = [
            UpdateOne(
                *instance._conditional_update(condition, increment, changes), namespace=namespace
            )
            for instance, condition, increment, changes in moves
        ]
        results = connection.database.client.bulk_write(
            updates, ordered=False, verbose_results=True
        ).update_results
        outcomes = []
        for index, (instance, _, increment, changes) in enumerate(moves):
            outcomes.append(index in results and results[index].matched_count == 1)
            if outcomes[-1]:
                instance._apply(increment, changes)
        return outcomes

    def _conditional_update(self, condition: dict, increment, changes: dict) -> tuple[dict, dict]:
        counters = {self._meta.get_field(name).column: name for name in increment}
        condition = {
            **condition,
            **{column: getattr(self, name) for column, name in counters.items()},
        }
        return {"_id": self.pk, **condition}, self._update(increment, changes)

    @classmethod
    def _update(cls, increment, changes: dict) -> dict:
        """The update document that sets `changes` (stored as the ORM stores them) and adds 1
        to the `increment` fields."""
        values = {
            name: value.pk if isinstance(value, models.Model) else value
            for name, value in changes.items()
        }
        fields = {name: cls._meta.get_field(name) for name in values}
        update = {
            "$set": {
                f.column: f.get_db_prep_save(values[name], connection) for name, f in fields.items()
            }
        }
        if increment:
            update["$inc"] = {cls._meta.get_field(name).column: 1 for name in increment}
        return update

    def _apply(self, increment, changes: dict):
        for name, value in changes.items():
            setattr(self, name, value)
        for name in increment:
            setattr(self, name, getattr(self, name) + 1)

"""Service Bus entity semantics, independent of the AMQP transport.

All state sits behind one re-entrant lock, so the reactor thread and test threads (``snapshot``) can share it.
Times are wall-clock seconds (``time.time``), because the SDK's calls and lock expiries are real.
"""

from __future__ import annotations

import heapq
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .codec import AmqpMessage, to_timestamp
from .config import NEVER, EntityConfig, NamespaceConfig, RuleConfig

log = logging.getLogger(__name__)

DLQ_SUFFIX = "/$deadletterqueue"
ACTIVE, LOCKED, DEFERRED, SCHEDULED = "active", "locked", "deferred", "scheduled"
# Values of x-opt-message-state as the SDK maps them (ServiceBusMessageState).
STATE_CODES = {ACTIVE: 0, LOCKED: 0, DEFERRED: 1, SCHEDULED: 2}
# Service Bus allows at most 4 forwarding hops.
MAX_FORWARD_HOPS = 4


class BrokerError(Exception):
    """An error with the AMQP condition Service Bus would report."""

    condition = "amqp:internal-error"
    status = 500

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


class EntityNotFound(BrokerError):
    condition = "amqp:not-found"
    status = 404


class LockLost(BrokerError):
    condition = "com.microsoft:message-lock-lost"
    status = 410


class MessageNotFound(BrokerError):
    condition = "com.microsoft:message-not-found"
    status = 404


class NotAllowed(BrokerError):
    condition = "amqp:not-allowed"
    status = 400


@dataclass
class Record:
    """One message in one queue or subscription (or its dead-letter queue)."""

    seq: int
    message: AmqpMessage
    enqueued_time: float
    state: str = ACTIVE
    delivery_count: int = 0
    lock_token: uuid.UUID | None = None
    locked_until: float = 0.0
    scheduled_time: float | None = None
    expires_at: float = NEVER
    dead_letter_source: str | None = None
    ttl: float = NEVER  # effective time to live (the sender's, capped by the entity's default)
    deferred: bool = False  # received by sequence number: goes back to deferred when unlocked
    handed_out: bool = False  # received in ReceiveAndDelete mode: gone from the entity, being encoded once

    def encode(self) -> bytes:
        # Guess: Service Bus reports the entity's default TTL as the message's TimeToLive when none was set.
        ttl = None if self.ttl == NEVER else self.ttl
        return self.message.encode(delivery_count=self.earlier_deliveries, annotations=self.annotations(), ttl=ttl)

    @property
    def earlier_deliveries(self) -> int:
        """What Service Bus puts in the header's ``delivery-count``: deliveries before the current one.

        ``delivery_count`` counts every hand-out, the current one included (it is what MaxDeliveryCount is held
        against); on the wire Service Bus sends the number of *earlier* attempts, as AMQP defines the field. The
        Python SDK passes that through (0 on a first receive); the .NET and Java SDKs and the Functions host's
        extension add 1. A peeked message that nobody holds shows every delivery so far."""
        if self.lock_token is not None or self.handed_out:
            return max(0, self.delivery_count - 1)
        return self.delivery_count

    def annotations(self) -> dict[str, Any]:
        ann: dict[str, Any] = {
            "x-opt-sequence-number": self.seq,
            "x-opt-enqueued-time": to_timestamp(self.enqueued_time),
        }
        if self.state == LOCKED:
            ann["x-opt-locked-until"] = to_timestamp(self.locked_until)
        if self.state in (DEFERRED, SCHEDULED):
            ann["x-opt-message-state"] = STATE_CODES[self.state]
        elif self.deferred:
            ann["x-opt-message-state"] = STATE_CODES[DEFERRED]
        if self.scheduled_time is not None:
            ann["x-opt-scheduled-enqueue-time"] = to_timestamp(self.scheduled_time)
        if self.dead_letter_source:
            ann["x-opt-deadletter-source"] = self.dead_letter_source
        return ann


@dataclass
class Queue:
    """A queue, a subscription, or the dead-letter sub-queue of either."""

    path: str
    config: EntityConfig
    dlq: Queue | None = None
    is_dlq: bool = False
    records: dict[int, Record] = field(default_factory=dict)
    available: list[int] = field(default_factory=list)  # heap of sequence numbers
    locks: dict[uuid.UUID, int] = field(default_factory=dict)
    duplicates: dict[str, float] = field(default_factory=dict)
    next_seq: int = 1

    def take_seq(self) -> int:
        seq = self.next_seq
        self.next_seq += 1
        return seq

    def make_available(self, rec: Record) -> None:
        rec.state = ACTIVE
        rec.lock_token = None
        rec.locked_until = 0.0
        heapq.heappush(self.available, rec.seq)

    def remove(self, rec: Record) -> None:
        self.records.pop(rec.seq, None)
        if rec.lock_token is not None:
            self.locks.pop(rec.lock_token, None)


@dataclass
class Topic:
    path: str
    config: EntityConfig
    subscriptions: dict[str, tuple[Queue, tuple[RuleConfig, ...]]] = field(default_factory=dict)
    duplicates: dict[str, float] = field(default_factory=dict)
    scheduled: dict[int, tuple[AmqpMessage, float]] = field(default_factory=dict)
    next_seq: int = 1


@dataclass
class Delivered:
    """What a receive hands to the transport: the record's state at the moment of delivery."""

    queue: Queue
    record: Record
    lock_token: uuid.UUID
    settled: bool  # ReceiveAndDelete: already removed from the entity


def _norm(path: str) -> str:
    return path.strip("/").lower()


class Broker:
    """Queues, topics and subscriptions of one namespace (the first one in the config)."""

    def __init__(self, namespaces: list[NamespaceConfig], clock: Callable[[], float] = time.time) -> None:
        self.lock = threading.RLock()
        self.clock = clock
        self.queues: dict[str, Queue] = {}
        self.topics: dict[str, Topic] = {}
        # Guess: the official emulator serves one namespace; entities of every listed namespace are merged here.
        for ns in namespaces:
            for q in ns.queues:
                self._add_queue(q.name, q)
            for t in ns.topics:
                topic = Topic(path=t.entity.name, config=t.entity)
                self.topics[_norm(t.entity.name)] = topic
                for s in t.subscriptions:
                    path = f"{t.entity.name}/Subscriptions/{s.name}"
                    sub = self._add_queue(path, s)
                    topic.subscriptions[_norm(s.name)] = (sub, s.rules)
        self.listeners: list[Callable[[Queue], None]] = []

    def _add_queue(self, path: str, config: EntityConfig) -> Queue:
        dlq = Queue(path=path + DLQ_SUFFIX, config=config, is_dlq=True)
        queue = Queue(path=path, config=config, dlq=dlq)
        self.queues[_norm(path)] = queue
        self.queues[_norm(dlq.path)] = dlq
        return queue

    # ----------------------------------------------------------------- lookup

    def find_queue(self, path: str) -> Queue:
        """A receivable entity: queue, subscription or a dead-letter queue."""
        queue = self.queues.get(_norm(path))
        if queue is None:
            raise EntityNotFound(f"The messaging entity '{path}' could not be found.")
        return queue

    def find_target(self, path: str) -> Queue | Topic:
        """A sendable entity: queue or topic."""
        key = _norm(path)
        if key in self.topics:
            return self.topics[key]
        queue = self.queues.get(key)
        if queue is None or queue.is_dlq or "/subscriptions/" in key:
            if queue is not None:
                raise NotAllowed(f"Cannot send to '{path}'.")
            raise EntityNotFound(f"The messaging entity '{path}' could not be found.")
        return queue

    def exists(self, path: str) -> bool:
        key = _norm(path)
        return key in self.topics or key in self.queues

    # ----------------------------------------------------------------- sending

    def _notify(self, queue: Queue) -> None:
        for listener in self.listeners:
            listener(queue)

    def _is_duplicate(self, history: dict[str, float], config: EntityConfig, msg: AmqpMessage) -> bool:
        if not config.requires_duplicate_detection:
            return False
        message_id = msg.message_id
        if message_id is None:
            return False
        now = self.clock()
        seen_until = history.get(message_id)
        if seen_until is not None and seen_until > now:
            return True
        history[message_id] = now + config.duplicate_detection_window
        return False

    def send(self, path: str, msg: AmqpMessage) -> None:
        """Accept a message sent to a queue or topic (honours x-opt-scheduled-enqueue-time)."""
        with self.lock:
            target = self.find_target(path)
            scheduled = msg.annotation("x-opt-scheduled-enqueue-time")
            if scheduled is not None and int(scheduled) / 1000.0 > self.clock():
                self.schedule(path, [msg], [int(scheduled) / 1000.0])
                return
            self._route(target, msg, hops=0)

    def _route(self, target: Queue | Topic, msg: AmqpMessage, *, hops: int, dedupe: bool = True) -> None:
        if isinstance(target, Topic):
            if dedupe and self._is_duplicate(target.duplicates, target.config, msg):
                log.debug("duplicate %s dropped by topic %s", msg.message_id, target.path)
                return
            for sub, rules in target.subscriptions.values():
                if _matches(rules, msg):
                    self._enqueue(sub, msg, hops=hops)
            return
        if dedupe and self._is_duplicate(target.duplicates, target.config, msg):
            log.debug("duplicate %s dropped by queue %s", msg.message_id, target.path)
            return
        self._enqueue(target, msg, hops=hops)

    def _enqueue(self, queue: Queue, msg: AmqpMessage, *, hops: int, dead_letter_source: str | None = None) -> Record:
        forward = queue.config.forward_to if not queue.is_dlq else None
        if forward and hops < MAX_FORWARD_HOPS and self.exists(forward):
            # Guess: forwarding applies duplicate detection of the destination as if sent there.
            self._route(self.find_target(forward), msg, hops=hops + 1)
            return Record(seq=0, message=msg, enqueued_time=self.clock())
        now = self.clock()
        ttl = msg.header_ttl()
        ttl = queue.config.default_ttl if ttl is None or ttl <= 0 else min(ttl, queue.config.default_ttl)
        rec = Record(
            seq=queue.take_seq(),
            message=msg,
            enqueued_time=now,
            expires_at=now + ttl if ttl != NEVER else NEVER,
            dead_letter_source=dead_letter_source,
            ttl=ttl,
        )
        queue.records[rec.seq] = rec
        queue.make_available(rec)
        self._notify(queue)
        return rec

    def schedule(self, path: str, messages: list[AmqpMessage], times: list[float]) -> list[int]:
        with self.lock:
            target = self.find_target(path)
            seqs = []
            for msg, when in zip(messages, times, strict=True):
                if isinstance(target, Topic):
                    if self._is_duplicate(target.duplicates, target.config, msg):
                        # Guess: a duplicate scheduled message still gets a sequence number back.
                        seqs.append(target.next_seq)
                        target.next_seq += 1
                        continue
                    seq = target.next_seq
                    target.next_seq += 1
                    target.scheduled[seq] = (msg, when)
                    seqs.append(seq)
                    continue
                if self._is_duplicate(target.duplicates, target.config, msg):
                    seqs.append(target.take_seq())
                    continue
                rec = Record(seq=target.take_seq(), message=msg, enqueued_time=when, state=SCHEDULED)
                rec.scheduled_time = when
                target.records[rec.seq] = rec
                seqs.append(rec.seq)
            return seqs

    def cancel_scheduled(self, path: str, seqs: Iterable[int]) -> None:
        with self.lock:
            target = self.find_target(path)
            for seq in seqs:
                if isinstance(target, Topic):
                    if target.scheduled.pop(seq, None) is None:
                        raise MessageNotFound(f"Scheduled message {seq} not found.")
                    continue
                rec = target.records.get(seq)
                if rec is None or rec.state != SCHEDULED:
                    raise MessageNotFound(f"Scheduled message {seq} not found.")
                target.remove(rec)

    # ----------------------------------------------------------------- receiving

    def receive(self, queue: Queue, *, peek_lock: bool) -> Delivered | None:
        """Take the next available message, locking it (PeekLock) or removing it (ReceiveAndDelete)."""
        with self.lock:
            now = self.clock()
            while queue.available:
                seq = heapq.heappop(queue.available)
                rec = queue.records.get(seq)
                if rec is None or rec.state != ACTIVE:
                    continue
                if rec.expires_at <= now:
                    self._expire(queue, rec)
                    continue
                return self._hand_out(queue, rec, peek_lock=peek_lock, now=now)
            return None

    def _hand_out(self, queue: Queue, rec: Record, *, peek_lock: bool, now: float) -> Delivered:
        # Counted when handed out (undone on release); the header then carries the count before this delivery.
        rec.delivery_count += 1
        token = uuid.uuid4()
        if peek_lock:
            rec.state = LOCKED
            rec.lock_token = token
            rec.locked_until = now + queue.config.lock_duration
            queue.locks[token] = rec.seq
            return Delivered(queue=queue, record=rec, lock_token=token, settled=False)
        queue.remove(rec)
        rec.handed_out = True
        return Delivered(queue=queue, record=rec, lock_token=token, settled=True)

    def has_available(self, queue: Queue) -> bool:
        with self.lock:
            return bool(queue.available)

    def encode(self, delivered: Delivered) -> bytes:
        with self.lock:
            rec = delivered.record
            return rec.encode()

    def _locked(self, queue: Queue, token: uuid.UUID) -> Record:
        seq = queue.locks.get(token)
        rec = queue.records.get(seq) if seq is not None else None
        if rec is None or rec.state != LOCKED or rec.lock_token != token:
            raise LockLost(
                "The lock supplied is invalid. Either the lock expired, or the message has already been removed "
                "from the queue."
            )
        if rec.locked_until <= self.clock():
            self._lock_expired(queue, rec)
            raise LockLost("The lock on the message has expired.")
        return rec

    def complete(self, queue: Queue, token: uuid.UUID) -> None:
        with self.lock:
            rec = self._locked(queue, token)
            queue.remove(rec)

    def abandon(self, queue: Queue, token: uuid.UUID, properties: dict[str, Any] | None = None) -> None:
        with self.lock:
            rec = self._locked(queue, token)
            if properties:
                rec.message = rec.message.with_application_properties(properties)
            self._unlock_failed(queue, rec)

    def release(self, queue: Queue, token: uuid.UUID) -> None:
        """Unlock without counting a delivery (AMQP released: the client never looked at it)."""
        with self.lock:
            try:
                rec = self._locked(queue, token)
            except LockLost:
                return
            queue.locks.pop(token, None)
            rec.delivery_count = max(0, rec.delivery_count - 1)
            self._back(queue, rec)

    def defer(self, queue: Queue, token: uuid.UUID, properties: dict[str, Any] | None = None) -> None:
        with self.lock:
            rec = self._locked(queue, token)
            if properties:
                rec.message = rec.message.with_application_properties(properties)
            queue.locks.pop(token, None)
            rec.state = DEFERRED
            rec.lock_token = None

    def dead_letter(
        self,
        queue: Queue,
        token: uuid.UUID,
        reason: str | None,
        description: str | None,
        properties: dict[str, Any] | None = None,
    ) -> None:
        with self.lock:
            rec = self._locked(queue, token)
            if properties:
                rec.message = rec.message.with_application_properties(properties)
            self._to_dlq(queue, rec, reason, description)

    def renew(self, queue: Queue, token: uuid.UUID) -> float:
        with self.lock:
            rec = self._locked(queue, token)
            rec.locked_until = self.clock() + queue.config.lock_duration
            return rec.locked_until

    def _unlock_failed(self, queue: Queue, rec: Record) -> None:
        """Abandon or lock expiry: back to the queue, or to the DLQ once MaxDeliveryCount is reached."""
        if rec.lock_token is not None:
            queue.locks.pop(rec.lock_token, None)
        if not queue.is_dlq and rec.delivery_count >= queue.config.max_delivery_count:
            self._to_dlq(
                queue,
                rec,
                "MaxDeliveryCountExceeded",
                f"Message could not be consumed after {queue.config.max_delivery_count} delivery attempts.",
            )
            return
        self._back(queue, rec)

    def _back(self, queue: Queue, rec: Record) -> None:
        if rec.deferred:
            rec.state = DEFERRED
            rec.lock_token = None
            return
        queue.make_available(rec)
        self._notify(queue)

    def _lock_expired(self, queue: Queue, rec: Record) -> None:
        log.debug("lock expired on %s seq %d", queue.path, rec.seq)
        self._unlock_failed(queue, rec)

    def _to_dlq(self, queue: Queue, rec: Record, reason: str | None, description: str | None) -> None:
        queue.remove(rec)
        if queue.dlq is None:
            # Guess: dead-lettering a message of a dead-letter queue is refused by Service Bus; here it stays.
            queue.records[rec.seq] = rec
            queue.make_available(rec)
            return
        extra: dict[str, Any] = {}
        if reason is not None:
            extra["DeadLetterReason"] = reason
        if description is not None:
            extra["DeadLetterErrorDescription"] = description
        msg = rec.message.with_application_properties(extra) if extra else rec.message
        forward = queue.config.forward_dead_lettered_to
        if forward and self.exists(forward):
            self._route(self.find_target(forward), msg, hops=1, dedupe=False)
            return
        dlq = queue.dlq
        # Guess: a dead-lettered message keeps its sequence number and delivery count.
        new = Record(
            seq=rec.seq,
            message=msg,
            enqueued_time=rec.enqueued_time,
            delivery_count=rec.delivery_count,
            dead_letter_source=queue.path,
        )
        dlq.next_seq = max(dlq.next_seq, rec.seq + 1)
        dlq.records[new.seq] = new
        dlq.make_available(new)
        self._notify(dlq)

    def _expire(self, queue: Queue, rec: Record) -> None:
        if queue.config.dead_lettering_on_expiration and not queue.is_dlq:
            self._to_dlq(queue, rec, "TTLExpiredException", "The message expired and was dead lettered.")
        else:
            queue.remove(rec)

    # ----------------------------------------------------------------- management

    def peek(self, queue: Queue, from_seq: int, count: int) -> list[Record]:
        with self.lock:
            self.tick()
            seqs = sorted(s for s in queue.records if s >= from_seq)
            return [queue.records[s] for s in seqs[: max(0, count)]]

    def receive_deferred(self, queue: Queue, seqs: Iterable[int], *, peek_lock: bool) -> list[Delivered]:
        with self.lock:
            now = self.clock()
            out = []
            for seq in seqs:
                rec = queue.records.get(int(seq))
                if rec is None or rec.state != DEFERRED:
                    raise MessageNotFound(f"Deferred message with sequence number {seq} not found.")
                out.append(rec)
            delivered = []
            for rec in out:
                rec.deferred = True
                d = self._hand_out(queue, rec, peek_lock=peek_lock, now=now)
                delivered.append(d)
            return delivered

    def settle_by_token(
        self,
        queue: Queue,
        token: uuid.UUID,
        status: str,
        *,
        reason: str | None = None,
        description: str | None = None,
        properties: dict[str, Any] | None = None,
    ) -> None:
        """Settlement through $management (update-disposition), as used for deferred messages."""
        status = status.lower()
        if status == "completed":
            self.complete(queue, token)
        elif status == "abandoned":
            self.abandon(queue, token, properties)
        elif status in ("defered", "deferred"):
            self.defer(queue, token, properties)
        elif status == "suspended":
            self.dead_letter(queue, token, reason, description, properties)
        else:
            raise NotAllowed(f"Unknown disposition status {status!r}.")

    # ----------------------------------------------------------------- time

    def tick(self) -> None:
        """Expire locks, activate due scheduled messages, expire TTLs, forget old duplicate ids."""
        with self.lock:
            now = self.clock()
            for topic in self.topics.values():
                due = sorted((when, seq) for seq, (_msg, when) in topic.scheduled.items() if when <= now)
                for _when, seq in due:
                    msg, _ = topic.scheduled.pop(seq)
                    self._route(topic, msg, hops=0, dedupe=False)
                _forget(topic.duplicates, now)
            for queue in list(self.queues.values()):
                _forget(queue.duplicates, now)
                for rec in list(queue.records.values()):
                    if rec.state == LOCKED and rec.locked_until <= now:
                        self._lock_expired(queue, rec)
                    elif rec.state == SCHEDULED and rec.scheduled_time is not None and rec.scheduled_time <= now:
                        # Guess: the enqueued time of a scheduled message is its scheduled time.
                        rec.enqueued_time = rec.scheduled_time
                        ttl = min(rec.message.header_ttl() or NEVER, queue.config.default_ttl)
                        rec.ttl = ttl
                        rec.expires_at = rec.enqueued_time + ttl if ttl != NEVER else NEVER
                        queue.make_available(rec)
                        self._notify(queue)
                    elif rec.state == ACTIVE and rec.expires_at <= now:
                        self._expire(queue, rec)

    # ----------------------------------------------------------------- inspection

    def snapshot(self) -> dict[str, dict[str, int]]:
        """Counts per receivable entity (the DLQ's count is on its parent as ``dead_lettered``)."""
        with self.lock:
            self.tick()
            out: dict[str, dict[str, int]] = {}
            for queue in self.queues.values():
                if queue.is_dlq:
                    continue
                counts = {ACTIVE: 0, LOCKED: 0, DEFERRED: 0, SCHEDULED: 0}
                for rec in queue.records.values():
                    counts[rec.state] += 1
                out[queue.path] = {
                    "active": counts[ACTIVE],
                    "locked": counts[LOCKED],
                    "deferred": counts[DEFERRED],
                    "scheduled": counts[SCHEDULED],
                    "dead_lettered": len(queue.dlq.records) if queue.dlq else 0,
                }
            for topic in self.topics.values():
                out[topic.path] = {"scheduled": len(topic.scheduled)}
            return out

    def messages(self, path: str) -> list[dict[str, Any]]:
        """A plain view of the messages in an entity (e.g. ``q/$deadletterqueue``), for test assertions."""
        with self.lock:
            queue = self.find_queue(path)
            out = []
            for seq in sorted(queue.records):
                rec = queue.records[seq]
                app = rec.message.application_properties or {}
                out.append(
                    {
                        "sequence_number": rec.seq,
                        "message_id": rec.message.message_id,
                        "state": rec.state,
                        "delivery_count": rec.delivery_count,
                        "application_properties": {str(k): v for k, v in app.items()},
                        "dead_letter_reason": app.get("DeadLetterReason"),
                        "dead_letter_description": app.get("DeadLetterErrorDescription"),
                        "dead_letter_source": rec.dead_letter_source,
                    }
                )
            return out


def _forget(history: dict[str, float], now: float) -> None:
    for key in [k for k, until in history.items() if until <= now]:
        del history[key]


# ----------------------------------------------------------------- subscription rules

_SYSTEM_PROPERTIES = {
    "correlationid": "correlation_id",
    "messageid": "message_id",
    "to": "to",
    "replyto": "reply_to",
    "label": "subject",
    "subject": "subject",
    "sessionid": "group_id",
    "replytosessionid": "reply_to_group_id",
    "contenttype": "content_type",
}
_SQL_TERM = re.compile(
    r"^\s*(?P<name>(?:sys\.|user\.)?[A-Za-z_][\w\-]*|\[[^\]]+\])\s*(?P<op>=|<>|!=)\s*"
    r"(?P<value>'(?:[^']|'')*'|-?\d+(?:\.\d+)?|true|false)\s*$",
    re.IGNORECASE,
)


def _text(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def _property(msg: AmqpMessage, name: str, *, system: bool | None) -> Any:
    key = name.lower()
    if system is not False and key in _SYSTEM_PROPERTIES:
        return _text(msg.properties.get(_SYSTEM_PROPERTIES[key]))
    for k, v in (msg.application_properties or {}).items():
        if str(k).lower() == key:
            return _text(v)
    return None


def _matches_rule(rule: RuleConfig, msg: AmqpMessage) -> bool:
    if rule.kind == "true":
        return True
    if rule.kind == "false":
        return False
    if rule.kind == "correlation":
        for key, expected in rule.correlation.items():
            if key.lower() == "properties":
                for pk, pv in (expected or {}).items():
                    if _property(msg, pk, system=False) != pv:
                        return False
            elif _property(msg, key, system=True) != expected:
                return False
        return True
    return _matches_sql(rule.sql, msg)


def _matches_sql(sql: str, msg: AmqpMessage) -> bool:
    """A small subset of the SQL filter grammar: ``1=1``, ``1=0`` and ``a = 'x' AND b <> 2`` style terms."""
    text = sql.strip()
    if re.fullmatch(r"1\s*=\s*1", text):
        return True
    if re.fullmatch(r"1\s*=\s*0", text):
        return False
    for term in re.split(r"\s+AND\s+", text, flags=re.IGNORECASE):
        m = _SQL_TERM.match(term)
        if not m:
            # Guess: an expression outside the supported subset matches everything (logged once per call).
            log.warning("unsupported SQL filter %r: treated as matching", sql)
            return True
        name = m["name"].strip("[]")
        system: bool | None = None
        if name.lower().startswith("sys."):
            name, system = name[4:], True
        elif name.lower().startswith("user."):
            name, system = name[5:], False
        raw = m["value"]
        value: Any
        if raw.startswith("'"):
            value = raw[1:-1].replace("''", "'")
        elif raw.lower() in ("true", "false"):
            value = raw.lower() == "true"
        else:
            value = float(raw) if "." in raw else int(raw)
        actual = _property(msg, name, system=system)
        equal = actual == value
        if (m["op"] == "=") != equal:
            return False
    return True


def _matches(rules: tuple[RuleConfig, ...], msg: AmqpMessage) -> bool:
    if not rules:
        return True  # the $Default rule (TrueFilter)
    return any(_matches_rule(rule, msg) for rule in rules)

"""The AMQP 1.0 side: a python-qpid-proton reactor playing broker, ``$cbs`` and ``$management``."""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from proton import Condition, Delivery, Disposition, Endpoint, Handler, Link, Terminus
from proton.reactor import Container

from ..stop_signals import start_thread
from .broker import Broker, BrokerError, Delivered, NotAllowed, Queue
from .codec import (
    AmqpMessage,
    build_reply,
    long_array,
    plain,
    split_batch,
    split_sections,
    timestamp_array,
)
from .config import load_config

log = logging.getLogger(__name__)

DEFAULT_CONFIG = Path(__file__).with_name("Config.json")
# Service Bus Standard (and the official emulator) accept messages of up to 256 KB.
DEFAULT_MAX_MESSAGE_SIZE = 256 * 1024
TICK_SECONDS = 0.05
# On stop, how long the reactor keeps running so that clients receive the connection close frames.
CLOSE_GRACE_SECONDS = 0.25
MANAGEMENT = "$management"
CBS = "$cbs"
SESSION_FILTER = "com.microsoft:session-filter"


def entity_path(address: str | None) -> str:
    """``amqps://host:port/q/$management`` -> ``q/$management`` (scheme and host are ignored)."""
    if not address:
        return ""
    text = address
    if "://" in text:
        text = text.split("://", 1)[1]
        text = text.split("/", 1)[1] if "/" in text else ""
    return text.strip("/")


@dataclass
class _LinkState:
    kind: str  # "cbs-in", "cbs-out", "mgmt-in", "mgmt-out", "send", "receive"
    path: str
    queue: Queue | None = None
    peek_lock: bool = True


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


def _uuid(value: Any) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, bytes) and len(value) == 16:
        return uuid.UUID(bytes=value)
    return uuid.UUID(str(value))


class _BrokerHandler(Handler):
    def __init__(self, broker: Broker, max_message_size: int) -> None:
        super().__init__()
        self.broker = broker
        self.max_message_size = max_message_size
        self.links: dict[Link, _LinkState] = {}
        self.consumers: dict[str, list[Link]] = {}
        self.dirty: set[str] = set()
        self.container: Container | None = None
        self.stopping = threading.Event()
        self.connections: set[Any] = set()
        self.acceptor: Any = None
        self._close_deadline: float | None = None
        broker.listeners.append(self._on_queue_changed)

    # ------------------------------------------------------------ reactor plumbing

    def on_reactor_init(self, event: Any) -> None:
        event.container.schedule(TICK_SECONDS, self)

    def on_timer_task(self, event: Any) -> None:
        if self.stopping.is_set():
            self._wind_down(event.container)
            return
        try:
            self.broker.tick()
            self._pump_all()
        except Exception:
            log.exception("broker tick failed")
        event.container.schedule(TICK_SECONDS, self)

    def _wind_down(self, container: Container) -> None:
        """Stop listening, close every connection, and stop the reactor once the clients have seen their close
        frames (or after CLOSE_GRACE_SECONDS, for clients that do not answer)."""
        if self._close_deadline is None:
            self._close_deadline = time.monotonic() + CLOSE_GRACE_SECONDS
            if self.acceptor is not None:
                self.acceptor.close()
            for conn in list(self.connections):
                try:
                    conn.close()
                except Exception:
                    log.debug("closing connection failed", exc_info=True)
        if self.connections and time.monotonic() < self._close_deadline:
            container.schedule(TICK_SECONDS, self)
            return
        container.stop()

    def _on_queue_changed(self, queue: Queue) -> None:
        self.dirty.add(queue.path.lower())

    def _pump_all(self) -> None:
        dirty, self.dirty = self.dirty, set()
        for path in dirty:
            for link in list(self.consumers.get(path, [])):
                self._pump(link)

    # ------------------------------------------------------------ connection, session

    def on_connection_bound(self, event: Any) -> None:
        sasl = event.transport.sasl()
        sasl.allow_insecure_mechs = True
        sasl.allowed_mechs("ANONYMOUS PLAIN EXTERNAL MSSBCBS")

    def on_connection_remote_open(self, event: Any) -> None:
        conn = event.connection
        self.connections.add(conn)
        if conn.state & Endpoint.LOCAL_UNINIT:
            conn.container = "servicebus-standin"
            conn.open()

    def on_connection_remote_close(self, event: Any) -> None:
        conn = event.connection
        self._forget_connection(conn)
        if not conn.state & Endpoint.LOCAL_CLOSED:
            conn.close()

    def on_transport_closed(self, event: Any) -> None:
        if event.connection is not None:
            self._forget_connection(event.connection)

    def _forget_connection(self, conn: Any) -> None:
        self.connections.discard(conn)
        for link in [lnk for lnk in self.links if lnk.connection == conn]:
            self._forget_link(link)

    def on_session_remote_open(self, event: Any) -> None:
        if event.session.state & Endpoint.LOCAL_UNINIT:
            event.session.open()

    def on_session_remote_close(self, event: Any) -> None:
        if not event.session.state & Endpoint.LOCAL_CLOSED:
            event.session.close()

    # ------------------------------------------------------------ links

    def on_link_remote_open(self, event: Any) -> None:
        link = event.link
        if not link.state & Endpoint.LOCAL_UNINIT:
            return
        try:
            state = self._classify(link)
        except BrokerError as err:
            # Service Bus answers the attach without a source/target (the terminus was not created) and detaches
            # with the error, which the SDK raises (amqp:not-found -> MessagingEntityNotFoundError).
            log.info("refusing link %s: %s", link.name, err.description)
            link.condition = Condition(err.condition, err.description)
            link.source.type = Terminus.UNSPECIFIED
            link.target.type = Terminus.UNSPECIFIED
            link.open()
            link.close()
            return
        # Echo what the client asked for: the SDK detaches when source or target is missing.
        link.source.copy(link.remote_source)
        link.target.copy(link.remote_target)
        link.snd_settle_mode = link.remote_snd_settle_mode
        link.rcv_settle_mode = link.remote_rcv_settle_mode
        self.links[link] = state
        if link.is_receiver:
            link.max_message_size = self.max_message_size
        link.open()
        if link.is_receiver:
            link.flow(100)
        elif state.kind == "receive":
            self.consumers.setdefault(state.path.lower(), []).append(link)

    def _classify(self, link: Link) -> _LinkState:
        if link.is_receiver:  # the client sends to us
            path = entity_path(link.remote_target.address)
            if path.lower() == CBS:
                return _LinkState("cbs-in", path)
            if path.lower().endswith("/" + MANAGEMENT):
                entity = path[: -len(MANAGEMENT) - 1]
                self._require(entity)
                return _LinkState("mgmt-in", entity)
            self.broker.find_target(path)
            return _LinkState("send", path)
        path = entity_path(link.remote_source.address)
        if path.lower() == CBS:
            return _LinkState("cbs-out", path)
        if path.lower().endswith("/" + MANAGEMENT):
            entity = path[: -len(MANAGEMENT) - 1]
            self._require(entity)
            return _LinkState("mgmt-out", entity)
        filters = link.remote_source.filter
        if filters is not None and filters.next() is not None:
            filters.rewind()
            obj = plain(filters.get_object()) if filters.next() else None
            if isinstance(obj, dict) and any(str(k) == SESSION_FILTER for k in obj):
                raise BrokerError("Sessions are not supported by the stand-in.")
        queue = self.broker.find_queue(path)
        peek_lock = link.remote_snd_settle_mode != Link.SND_SETTLED
        return _LinkState("receive", queue.path, queue=queue, peek_lock=peek_lock)

    def _require(self, entity: str) -> None:
        if not self.broker.exists(entity):
            raise BrokerError(f"The messaging entity '{entity}' could not be found.")

    def on_link_remote_close(self, event: Any) -> None:
        link = event.link
        self._forget_link(link)
        if not link.state & Endpoint.LOCAL_CLOSED:
            link.close()

    def _forget_link(self, link: Link) -> None:
        state = self.links.pop(link, None)
        if state is None:
            return
        if state.kind == "receive":
            lst = self.consumers.get(state.path.lower(), [])
            if link in lst:
                lst.remove(link)
        # Locks of unsettled deliveries stay until they expire, as in Service Bus; the client may still settle
        # them through $management with the lock token.

    def on_link_flow(self, event: Any) -> None:
        link = event.link
        state = self.links.get(link)
        if state is not None and state.kind == "receive":
            self._pump(link)

    def _pump(self, link: Link) -> None:
        state = self.links.get(link)
        if state is None or state.queue is None or not link.state & Endpoint.LOCAL_ACTIVE:
            return
        while link.credit > 0:
            delivered = self.broker.receive(state.queue, peek_lock=state.peek_lock)
            if delivered is None:
                break
            self._send_delivery(link, state, delivered)
        if link.drain_mode and link.credit > 0:
            link.drained()

    def _send_delivery(self, link: Link, state: _LinkState, delivered: Delivered) -> None:
        # The SDK derives the lock token from the 16-byte delivery tag: UUID(bytes_le=tag).
        tag = delivered.lock_token.bytes_le
        raw = self.broker.encode(delivered)
        dlv = link.delivery(tag)  # type: ignore[arg-type]  # bytes tags work; the stub says str
        link.send(raw)
        link.advance()
        if delivered.settled:
            dlv.settle()
        else:
            # proton's Python binding decodes tags as text, so the lock rides on the delivery's attributes.
            dlv.sb_lock = (delivered.queue, delivered.lock_token)

    # ------------------------------------------------------------ deliveries

    def on_delivery(self, event: Any) -> None:
        dlv = event.delivery
        link = dlv.link
        state = self.links.get(link)
        if state is None:
            return
        if link.is_receiver:
            if dlv.readable and not dlv.partial:
                raw = bytes(link.recv(dlv.pending) or b"")
                link.advance()
                self._incoming(link, state, dlv, raw)
                if link.credit < 50:
                    link.flow(100 - link.credit)
            return
        if dlv.updated and state.kind == "receive":
            self._settle(state, dlv)

    def _incoming(self, link: Link, state: _LinkState, dlv: Delivery, raw: bytes) -> None:
        if state.kind == "send":
            try:
                for msg in self._messages_in(raw):
                    self.broker.send(state.path, msg)
                dlv.update(Disposition.ACCEPTED)
            except BrokerError as err:
                dlv.local.condition = Condition(err.condition, err.description)
                dlv.update(Disposition.REJECTED)
            except Exception as err:  # malformed input must not take the broker down
                log.exception("send to %s failed", state.path)
                dlv.local.condition = Condition("amqp:decode-error", str(err))
                dlv.update(Disposition.REJECTED)
            dlv.settle()
            self._pump_all()
            return
        dlv.update(Disposition.ACCEPTED)
        dlv.settle()
        try:
            request = AmqpMessage.decode(raw)
            body = _amqp_value(raw)
        except Exception:
            log.exception("undecodable request on %s", state.path)
            return
        if state.kind == "cbs-in":
            self._reply(
                link,
                state,
                request,
                build_reply(
                    correlation_id=request.properties.get("message_id"),
                    status_code=202,
                    description="Accepted",
                    code_key="status-code",
                    description_key="status-description",
                ),
            )
        elif state.kind == "mgmt-in":
            self._reply(link, state, request, self._management(state.path, request, body))
            self._pump_all()

    @staticmethod
    def _messages_in(raw: bytes) -> list[AmqpMessage]:
        # Guess (heuristic): proton's Python binding does not expose the transfer's message-format, so a batch
        # (format 0x80013700) is recognised by its Data sections each holding a complete encoded message.
        sections = split_sections(raw)
        data = [value for code, _chunk, value in sections if code == 0x75]
        if (
            data
            and all(_looks_like_message(bytes(d)) for d in data)
            and not any(code in (0x76, 0x77) for code, _c, _v in sections)
        ):
            return [AmqpMessage.decode(inner) for inner in split_batch(raw)]
        return [AmqpMessage.decode(raw)]

    def _reply(self, link: Link, state: _LinkState, request: AmqpMessage, reply: bytes) -> None:
        want = "cbs-out" if state.kind == "cbs-in" else "mgmt-out"
        reply_to = _text(request.properties.get("reply_to"))
        candidates = [
            lnk
            for lnk, st in self.links.items()
            if st.kind == want
            and lnk.connection == link.connection
            and (want == "cbs-out" or st.path.lower() == state.path.lower())
        ]
        if not candidates:
            log.warning("no reply link for %s on this connection", state.path)
            return
        chosen = candidates[-1]
        if reply_to:
            for lnk in candidates:
                if _text(lnk.remote_target.address) == reply_to:
                    chosen = lnk
        dlv = chosen.delivery(uuid.uuid4().bytes)  # type: ignore[arg-type]
        chosen.send(reply)
        chosen.advance()
        dlv.settle()

    # ------------------------------------------------------------ settlement

    def _settle(self, state: _LinkState, dlv: Delivery) -> None:
        entry = getattr(dlv, "sb_lock", None)
        dlv.sb_lock = None
        remote = dlv.remote
        outcome = dlv.remote_state
        if entry is None:
            dlv.settle()
            return
        queue, token = entry
        try:
            if outcome == Disposition.ACCEPTED:
                self.broker.complete(queue, token)
                dlv.update(Disposition.ACCEPTED)
            elif outcome == Disposition.RELEASED:
                self.broker.release(queue, token)
                dlv.update(Disposition.RELEASED)
            elif outcome == Disposition.MODIFIED:
                props = _annotations_dict(remote.annotations)
                if remote.undeliverable:
                    self.broker.defer(queue, token, props)
                else:
                    self.broker.abandon(queue, token, props)
                dlv.local.failed = remote.failed
                dlv.local.undeliverable = remote.undeliverable
                dlv.update(Disposition.MODIFIED)
            elif outcome == Disposition.REJECTED:
                cond = remote.condition
                info = plain(cond.info) if cond is not None and cond.info else {}
                info = {str(k): v for k, v in (info or {}).items()}
                reason = info.get("DeadLetterReason")
                description = info.get("DeadLetterErrorDescription")
                if description is None and cond is not None:
                    description = cond.description
                self.broker.dead_letter(
                    queue,
                    token,
                    _text(reason) if reason is not None else None,
                    _text(description) if description is not None else None,
                )
                dlv.update(Disposition.REJECTED)
            else:
                # Received or unknown: keep the lock and wait for a terminal outcome.
                dlv.sb_lock = entry
                return
        except BrokerError as err:
            dlv.local.condition = Condition(err.condition, err.description)
            dlv.update(Disposition.REJECTED)
        dlv.settle()

    # ------------------------------------------------------------ $management

    def _management(self, entity: str, request: AmqpMessage, body: Any) -> bytes:
        app = {str(k): v for k, v in (request.application_properties or {}).items()}
        operation = _text(app.get("operation"))
        correlation_id = request.properties.get("message_id")
        body = body if isinstance(body, dict) else {}
        body = {str(k): v for k, v in body.items()}
        try:
            status, result = self._operation(entity, operation, body)
            return build_reply(correlation_id=correlation_id, status_code=status, description="", body=result)
        except BrokerError as err:
            return build_reply(
                correlation_id=correlation_id,
                status_code=err.status,
                description=err.description,
                error_condition=err.condition,
            )
        except Exception as err:
            log.exception("management operation %s failed", operation)
            return build_reply(
                correlation_id=correlation_id,
                status_code=500,
                description=repr(err),
                error_condition="amqp:internal-error",
            )

    def _operation(self, entity: str, operation: str, body: dict[str, Any]) -> tuple[int, Any]:
        broker = self.broker
        op = operation.split(":", 1)[1] if operation.startswith("com.microsoft:") else operation
        if op == "schedule-message":
            messages, times = [], []
            for raw_item in body.get("messages") or []:
                entry = {str(k): v for k, v in raw_item.items()}
                msg = AmqpMessage.decode(bytes(entry["message"]))
                when = msg.annotation("x-opt-scheduled-enqueue-time")
                if when is None:
                    raise NotAllowed("scheduled message without x-opt-scheduled-enqueue-time")
                messages.append(msg)
                times.append(int(when) / 1000.0)
            seqs = broker.schedule(entity, messages, times)
            self._pump_all()
            return 200, {"sequence-numbers": long_array(seqs)}
        if op == "cancel-scheduled-message":
            broker.cancel_scheduled(entity, [int(s) for s in body.get("sequence-numbers") or []])
            return 200, {}
        queue = broker.find_queue(entity)
        if op == "renew-lock":
            tokens = [_uuid(t) for t in body.get("lock-tokens") or []]
            return 200, {"expirations": timestamp_array([broker.renew(queue, t) for t in tokens])}
        if op == "peek-message":
            start = int(body.get("from-sequence-number") or 0)
            count = int(body.get("message-count") or 1)
            records = broker.peek(queue, start, count)
            if not records:
                return 204, {}
            with broker.lock:
                encoded = [{"message": r.encode()} for r in records]
            return 200, {"messages": encoded}
        if op == "receive-by-sequence-number":
            seqs = [int(s) for s in body.get("sequence-numbers") or []]
            mode = int(body.get("receiver-settle-mode") or 0)
            delivered = broker.receive_deferred(queue, seqs, peek_lock=mode == 1)
            items = []
            for d in delivered:
                item: dict[str, Any] = {"message": broker.encode(d)}
                if not d.settled:
                    item["lock-token"] = d.lock_token
                items.append(item)
            return 200, {"messages": items}
        if op == "update-disposition":
            status = _text(body.get("disposition-status"))
            props = body.get("properties-to-modify") or None
            for token in body.get("lock-tokens") or []:
                broker.settle_by_token(
                    queue,
                    _uuid(token),
                    status,
                    reason=_opt_text(body.get("deadletter-reason")),
                    description=_opt_text(body.get("deadletter-description")),
                    properties={str(k): v for k, v in props.items()} if isinstance(props, dict) else None,
                )
            self._pump_all()
            return 200, {}
        if op in ("renew-session-lock", "get-session-state", "set-session-state", "get-message-sessions"):
            raise BrokerError("Sessions are not supported by the stand-in.")
        raise NotAllowed(f"Operation {operation!r} is not supported by the stand-in.")


def _opt_text(value: Any) -> str | None:
    return None if value is None else _text(value)


def _annotations_dict(value: Any) -> dict[str, Any] | None:
    if not value:
        return None
    return {str(k): plain(v) for k, v in dict(value).items()}


def _amqp_value(raw: bytes) -> Any:
    for code, _chunk, value in split_sections(raw):
        if code == 0x77:
            return value
    return None


def _looks_like_message(data: bytes) -> bool:
    if len(data) < 3 or data[0] != 0x00 or data[1] != 0x53 or not 0x70 <= data[2] <= 0x78:
        return False
    try:
        codes = [code for code, _c, _v in split_sections(data)]
    except Exception:
        return False
    return bool(codes) and all(0x70 <= c <= 0x78 for c in codes) and any(c in (0x75, 0x76, 0x77) for c in codes)


class _DropDisconnectNoise(logging.Filter):
    """proton logs an ERROR whenever a client closes its socket before the broker's close frame is written."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(("Couldn't send", "Couldn't recv"))


_proton_log = logging.getLogger("proton")
if not any(isinstance(f, _DropDisconnectNoise) for f in _proton_log.filters):
    _proton_log.addFilter(_DropDisconnectNoise())


class ServiceBusStandIn:
    """An in-process AMQP 1.0 server that the unmodified ``azure-servicebus`` SDK can talk to.

    ``ServiceBusStandIn(config=path_or_dict).start(host, port)`` runs the proton reactor in a daemon thread.
    """

    def __init__(
        self,
        config: str | os.PathLike[str] | dict[str, Any] | None = None,
        *,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    ) -> None:
        cfg = load_config(config if isinstance(config, dict) else str(config or DEFAULT_CONFIG))
        self.broker = Broker(cfg)
        self.max_message_size = max_message_size
        self.host = "127.0.0.1"
        self.port = 0
        self._thread: threading.Thread | None = None
        self._handler: _BrokerHandler | None = None
        self._error: BaseException | None = None

    @property
    def connection_string(self) -> str:
        return (
            f"Endpoint=sb://{self.host}:{self.port};SharedAccessKeyName=RootManageSharedAccessKey;"
            "SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;"
        )

    def start(self, host: str = "127.0.0.1", port: int = 0) -> ServiceBusStandIn:
        if self._thread is not None:
            raise RuntimeError("already started")
        handler = _BrokerHandler(self.broker, self.max_message_size)
        container = Container(handler)
        handler.container = container
        acceptor = container.listen(f"{host}:{port}")
        handler.acceptor = acceptor
        self.host = host
        sock: Any = acceptor._selectable._delegate
        self.port = int(sock.getsockname()[1])
        self._handler = handler

        def run() -> None:
            try:
                container.run()
            except BaseException as err:  # reported by stop()
                self._error = err
                log.exception("Service Bus stand-in reactor stopped")

        # The reactor thread never takes SIGINT/SIGTERM: they must reach the main thread (see stop_signals).
        self._thread = start_thread(
            threading.Thread(target=run, name=f"servicebus-standin:{self.port}", daemon=True)
        )
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Close the listener and every connection, then end the reactor thread (within ``timeout``)."""
        if self._thread is None or self._handler is None:
            return
        self._handler.stopping.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("the Service Bus stand-in's reactor did not stop within %.1f s", timeout)
        self._thread = None

    def __enter__(self) -> ServiceBusStandIn:
        if self._thread is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def snapshot(self) -> dict[str, dict[str, int]]:
        """Counts per entity: ``{"q": {"active", "locked", "deferred", "scheduled", "dead_lettered"}}``."""
        return self.broker.snapshot()

    def messages(self, path: str) -> list[dict[str, Any]]:
        """The messages currently in ``path`` (a queue, subscription or ``.../$deadletterqueue``)."""
        return self.broker.messages(path)

    def wait_until(self, predicate: Any, timeout: float = 10.0, interval: float = 0.05) -> dict[str, Any]:
        """Poll ``predicate(snapshot)`` until it is true; returns the snapshot or raises TimeoutError."""
        import time

        deadline = time.monotonic() + timeout
        while True:
            snap = self.snapshot()
            if predicate(snap):
                return snap
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met; last snapshot {snap}")
            time.sleep(interval)


__all__ = ["DEFAULT_CONFIG", "ServiceBusStandIn", "entity_path"]

"""A local AMQP 1.0 stand-in for Azure Service Bus that the unmodified ``azure-servicebus`` SDK talks to.

from emulators.servicebus import ServiceBusStandIn
with ServiceBusStandIn(config="emulators/servicebus/Config.json").start(port=0) as sb:
    conn = sb.connection_string
"""

from .broker import Broker
from .config import EntityConfig, load_config, parse_duration
from .server import DEFAULT_CONFIG, ServiceBusStandIn

__all__ = ["DEFAULT_CONFIG", "Broker", "EntityConfig", "ServiceBusStandIn", "load_config", "parse_duration"]

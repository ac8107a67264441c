"""Sends log records to an OTLP/HTTP endpoint with the OpenTelemetry Python SDK, the way an
application does: a LoggerProvider with a BatchLogRecordProcessor and the OTLP/HTTP
(protobuf) exporter, fed through the standard `logging` module.

    otel_client.py ENDPOINT SERVICE_NAME COUNT [gzip]

Each record is `otel record <i>` with attributes `seq` (int) and `test.kind` ("otel").
Exits 0 once every record was exported (force_flush returned True), 1 otherwise.
"""

import logging
import sys

from opentelemetry._logs import set_logger_provider
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource


def main():
    endpoint, service, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    gzip = len(sys.argv) > 4 and sys.argv[4] == "gzip"
    provider = LoggerProvider(resource=Resource.create({"service.name": service}))
    set_logger_provider(provider)
    exporter = OTLPLogExporter(
        endpoint=endpoint,
        compression=Compression.Gzip if gzip else Compression.NoCompression,
        timeout=30,
    )
    # A queue that holds every record: the SDK's default (2048) drops what does not fit,
    # which would be the client's loss, not the server's.
    provider.add_log_record_processor(
        BatchLogRecordProcessor(exporter, max_queue_size=count + 1, schedule_delay_millis=200)
    )
    log = logging.getLogger("otel-test")
    log.setLevel(logging.INFO)
    log.propagate = False
    log.addHandler(LoggingHandler(level=logging.INFO, logger_provider=provider))
    for i in range(count):
        log.info("otel record %d", i, extra={"seq": i, "test.kind": "otel"})
    ok = provider.force_flush(timeout_millis=60_000)
    provider.shutdown()
    print("flushed" if ok else "flush failed", file=sys.stderr)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

# Multi-stage build of the IARI worker. The ONNX Runtime library is fetched (and its wheel's
# SHA-256 checked) during the build by the same script developers use.
FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends python3-pip && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN scripts/fetch-ort.sh && cargo build --release --locked

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* && useradd --system --home /app iari
WORKDIR /app
COPY --from=build /src/target/release/iari /usr/local/bin/iari
COPY --from=build /src/.ort/lib/ /app/.ort/lib/
COPY --from=build /src/onnx/models/ /app/onnx/models/
COPY --from=build /src/onnx/samples/ /app/onnx/samples/
COPY config/ /app/config/
USER iari
ENV ORT_DYLIB_PATH=/app/.ort/lib/libonnxruntime.so
EXPOSE 8080
ENTRYPOINT ["iari"]
CMD ["worker"]

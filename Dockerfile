# Multi-stage build of the IARI worker. The ONNX Runtime library is fetched (and its wheel's
# SHA-256 checked) during the build by the same script developers use. Base images are pinned by
# digest (the multi-architecture index of the named tag): a rebuild gets the same bases until
# someone moves the pin on purpose.
FROM rust:1.95-bookworm@sha256:6258907abe69656e41cd992e0b705cdcfabcbbe3db374f92ed2d47121282d4a1 AS build
RUN apt-get update && apt-get install -y --no-install-recommends python3-pip && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN scripts/fetch-ort.sh && cargo build --release --locked

FROM debian:bookworm-slim@sha256:7b140f374b289a7c2befc338f42ebe6441b7ea838a042bbd5acbfca6ec875818
# A fixed uid, so bind mounts can be given to it; /app/out/hl7 is the user's, so a named volume
# mounted there (docker-compose.yml) starts out writable by it.
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home /app iari \
    && mkdir -p /app/out/hl7 && chown iari:iari /app/out /app/out/hl7
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

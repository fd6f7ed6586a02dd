#!/usr/bin/env bash
# Regenerates Sources/Protocol/Generated/ from Sources/Protocol/Proto/*.proto (the federation service and the
# standard gRPC health service).
#
# The build never runs a protoc plugin: the generated Swift files are committed. Run this script
# after changing the .proto (add fields with new numbers only; field numbers are frozen).
#
# Needs: protoc (Debian: apt-get install -y protobuf-compiler).
# The two plugins are built once from the mirrored Swift packages, in a scratch directory outside
# the repository (default /tmp/feddistill-protoc-plugins, override with PLUGIN_DIR):
#   - protoc-gen-grpc-swift-2 from grpc/grpc-swift-protobuf 2.4.1, and
#   - protoc-gen-swift from apple/swift-protobuf (the version grpc-swift-protobuf resolves: 1.39.0),
# both with `swift build --product …` inside a clone of grpc-swift-protobuf. A debug build is enough
# and takes about a minute on two cores.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
plugin_dir="${PLUGIN_DIR:-/tmp/feddistill-protoc-plugins}"
grpc_protobuf_url="${GRPC_SWIFT_PROTOBUF_URL:-https://github.com/grpc/grpc-swift-protobuf}"
grpc_protobuf_version="2.4.1"

command -v protoc >/dev/null || { echo "protoc not found: apt-get install -y protobuf-compiler" >&2; exit 1; }

checkout="$plugin_dir/grpc-swift-protobuf"
if [ ! -d "$checkout/.git" ]; then
    mkdir -p "$plugin_dir"
    git clone --quiet "$grpc_protobuf_url" "$checkout"
fi
git -C "$checkout" checkout --quiet "$grpc_protobuf_version"
(cd "$checkout" && swift build --product protoc-gen-grpc-swift-2 && swift build --product protoc-gen-swift)
bin="$(cd "$checkout" && swift build --show-bin-path)"

out="$repo/Sources/Protocol/Generated"
mkdir -p "$out"
rm -f "$out"/*.pb.swift "$out"/*.grpc.swift
protoc \
    --proto_path="$repo/Sources/Protocol/Proto" \
    --plugin=protoc-gen-swift="$bin/protoc-gen-swift" \
    --plugin=protoc-gen-grpc-swift-2="$bin/protoc-gen-grpc-swift-2" \
    --swift_opt=Visibility=Public \
    --swift_out="$out" \
    --grpc-swift-2_opt=Visibility=Public,Server=true,Client=true \
    --grpc-swift-2_out="$out" \
    $(cd "$repo/Sources/Protocol/Proto" && ls *.proto)
echo "generated: $(ls "$out")"

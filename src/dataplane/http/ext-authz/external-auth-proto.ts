// The part of Envoy's ext_authz gRPC API Trellis speaks. Package, message and field names and numbers
// are Envoy's, from envoyproxy/envoy api/: envoy/service/auth/v3/external_auth.proto and
// attribute_context.proto, envoy/config/core/v3/address.proto and base.proto,
// envoy/type/v3/http_status.proto, and google/rpc/status.proto. Fields Trellis does not use are left
// out (protobuf skips unknown fields), and nested packages are flattened into messages with the same
// wire format: an enum is an int32, a message keeps its field numbers.
// It is kept as text here rather than a .proto file so that it travels with the stripped sources
// proxies run from (src/platform/stripped.ts copies .ts files only).
import * as protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';

const PROTO = `syntax = "proto3";

package envoy.service.auth.v3;

service Authorization {
  rpc Check(CheckRequest) returns (CheckResponse) {}
}

message CheckRequest {
  AttributeContext attributes = 1;
}

message AttributeContext {
  message Peer {
    Address address = 1;
    string service = 2;
    map<string, string> labels = 3;
    string principal = 4;
  }
  message Request {
    HttpRequest http = 2;
  }
  message HttpRequest {
    string id = 1;
    string method = 2;
    map<string, string> headers = 3;
    string path = 4;
    string host = 5;
    string scheme = 6;
    int64 size = 9;
    string protocol = 10;
    string body = 11;
    bytes raw_body = 12;
  }
  Peer source = 1;
  Peer destination = 2;
  Request request = 4;
  map<string, string> context_extensions = 10;
}

// envoy.config.core.v3.Address (oneof address: socket_address = 1).
message Address {
  SocketAddress socket_address = 1;
}

// envoy.config.core.v3.SocketAddress (protocol = 1 is TCP = 0; port_specifier: port_value = 3).
message SocketAddress {
  string address = 2;
  uint32 port_value = 3;
}

// envoy.config.core.v3.HeaderValue.
message HeaderValue {
  string key = 1;
  string value = 2;
}

// envoy.config.core.v3.HeaderValueOption (append is a google.protobuf.BoolValue: field 1 of a message).
message HeaderValueOption {
  HeaderValue header = 1;
  BoolValue append = 2;
}

message BoolValue {
  bool value = 1;
}

// google.rpc.Status.
message RpcStatus {
  int32 code = 1;
  string message = 2;
}

// envoy.type.v3.HttpStatus (code is the StatusCode enum).
message HttpStatus {
  int32 code = 1;
}

message DeniedHttpResponse {
  HttpStatus status = 1;
  repeated HeaderValueOption headers = 2;
  string body = 3;
}

message OkHttpResponse {
  repeated HeaderValueOption headers = 2;
  repeated string headers_to_remove = 5;
  repeated HeaderValueOption response_headers_to_add = 6;
}

message CheckResponse {
  RpcStatus status = 1;
  oneof http_response {
    DeniedHttpResponse denied_response = 2;
    OkHttpResponse ok_response = 3;
  }
}
`;

/** The package definition grpc-js loads services from; field names in lowerCamelCase. */
export function authorizationDefinition(): protoLoader.PackageDefinition {
  return protoLoader.fromJSON(protobuf.parse(PROTO).root.toJSON(), {
    longs: Number,
    defaults: false,
    oneofs: true,
  });
}

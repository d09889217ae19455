// Call the mpc coordinator's ListParties from Node.js (@grpc/grpc-js) over mutual TLS.
//
//   npm ci
//   node list_parties.js 127.0.0.1:7000 ../../parties/certs client [coordinator]
//
// Arguments: the coordinator's HOST:PORT, the certificate folder of `mpc certs init`
// (ca.pem, <client>.pem, <client>.key), the client's name, and optionally the name to verify
// in the coordinator's certificate (the target-name override). Without it grpc-js checks the
// host you dial, which `mpc certs init` puts in every server certificate only for
// localhost/127.0.0.1 and the names given with --hosts. Set MPC_PROTOS to the repository's
// protos/ folder when this script is not run from examples/grpc-js.
// Prints the response as JSON on stdout; exits 1 with the gRPC status on failure.
"use strict";

const fs = require("fs");
const path = require("path");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

const [address, certs, client, targetName] = process.argv.slice(2);
if (!address || !certs || !client) {
  console.error("usage: node list_parties.js HOST:PORT CERT_DIR CLIENT [TARGET_NAME]");
  process.exit(2);
}
const protos = process.env.MPC_PROTOS || path.join(__dirname, "..", "..", "protos");

const definition = protoLoader.loadSync("mpc/proto/v1/coordinator.proto", {
  includeDirs: [protos],
  keepCase: true, // field names as in the .proto (party_id, not partyId)
  longs: String,
  enums: String,
  defaults: true,
});
const { Coordinator } = grpc.loadPackageDefinition(definition).mpc.proto.v1;

const credentials = grpc.credentials.createSsl(
  fs.readFileSync(path.join(certs, "ca.pem")), // trust only the consortium's CA
  fs.readFileSync(path.join(certs, `${client}.key`)),
  fs.readFileSync(path.join(certs, `${client}.pem`)),
);
const options = targetName
  ? {
      // Verify the certificate's name instead of the host dialled (Python clients always
      // do this, with "coordinator"), and send it as the :authority.
      "grpc.ssl_target_name_override": targetName,
      "grpc.default_authority": targetName,
    }
  : {};
const stub = new Coordinator(address, credentials, options);

const deadline = new Date(Date.now() + 30_000);
stub.ListParties({}, { deadline }, (error, response) => {
  stub.close();
  if (error) {
    console.error(`ListParties failed: ${grpc.status[error.code]}: ${error.details}`);
    process.exit(1);
  }
  console.log(JSON.stringify(response));
});

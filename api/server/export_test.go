package server

// HTTPStatusOf is the HTTP status mapError gives err, so that tests in package server_test can
// put a gRPC answer beside a REST one through the one mapping.
func HTTPStatusOf(err error) int { return mapError(err).httpStatus }

package resp

import "strconv"

// AppendCommand appends args as a RESP command (an array of bulk strings), the form every Redis server
// and Sentinel accepts.
func AppendCommand(dst []byte, args ...string) []byte {
	dst = appendHeader(dst, '*', int64(len(args)))
	for _, a := range args {
		dst = AppendBulk(dst, a)
	}
	return dst
}

// AppendBulk appends s as a bulk string.
func AppendBulk(dst []byte, s string) []byte {
	dst = appendHeader(dst, '$', int64(len(s)))
	return append(append(dst, s...), '\r', '\n')
}

// AppendArray appends the header of an array of n elements.
func AppendArray(dst []byte, n int) []byte { return appendHeader(dst, '*', int64(n)) }

// AppendInt appends n as an integer reply.
func AppendInt(dst []byte, n int64) []byte { return appendHeader(dst, ':', n) }

// AppendSimple appends s as a simple string reply ("+OK"). Line breaks in s are replaced by spaces: a
// simple string cannot hold them.
func AppendSimple(dst []byte, s string) []byte { return appendLine(append(dst, '+'), s) }

// AppendError appends msg as an error reply. msg should start with an error code ("ERR ...",
// "EXECABORT ..."), as Redis's own do; line breaks in it are replaced by spaces.
func AppendError(dst []byte, msg string) []byte { return appendLine(append(dst, '-'), msg) }

// AppendNull appends the null reply of the protocol version: "_" in RESP3, the null bulk string in
// RESP2.
func AppendNull(dst []byte, proto int) []byte {
	if proto >= 3 {
		return append(dst, '_', '\r', '\n')
	}
	return append(dst, '$', '-', '1', '\r', '\n')
}

// AppendNullArray appends the null array of the protocol version ("*-1" in RESP2, "_" in RESP3): the
// reply to an EXEC whose WATCH failed.
func AppendNullArray(dst []byte, proto int) []byte {
	if proto >= 3 {
		return append(dst, '_', '\r', '\n')
	}
	return append(dst, '*', '-', '1', '\r', '\n')
}

func appendHeader(dst []byte, kind byte, n int64) []byte {
	dst = strconv.AppendInt(append(dst, kind), n, 10)
	return append(dst, '\r', '\n')
}

func appendLine(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\r' || c == '\n' {
			c = ' '
		}
		dst = append(dst, c)
	}
	return append(dst, '\r', '\n')
}

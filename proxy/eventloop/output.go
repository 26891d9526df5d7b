package eventloop

import "sync"

// Output is what one socket of a loop was given to write and did not take yet. While nothing waits it
// holds no buffer (an idle session keeps none); the first short write takes a pooled 64 KiB one, which
// goes back once everything is written. The caller decides what a full socket means for the side that
// feeds it (a byte pipe stops reading at once, a RESP session past a high-water mark): Len says how
// much waits.
type Output struct {
	buf *[]byte // pooled; nil while nothing waits (unless Retain)
	off int32   // the start of what is not written yet
	// Retain keeps the buffer when everything is written, for a socket written to on most wake-ups of
	// its loop (a shared backend connection): it saves taking one from the pool and giving it back
	// each time. A buffer grown past maxPooled goes all the same.
	Retain bool
}

var outputBufs = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// maxPooled is the largest buffer given back to the pool: a burst does not keep its memory.
const maxPooled = 256 << 10

// Len is how many bytes wait.
func (o *Output) Len() int {
	if o.buf == nil {
		return 0
	}
	return len(*o.buf) - int(o.off)
}

// Write writes b to fd at once when nothing waits, and keeps what the socket does not take, after what
// waits already (order is kept). The error is the write's, other than ErrAgain; b may be reused when it
// returns.
func (o *Output) Write(fd int, b []byte) error {
	if o.Len() == 0 {
		for len(b) > 0 {
			n, err := Write(fd, b)
			if n > 0 {
				b = b[n:]
				continue
			}
			if err == ErrAgain {
				break
			}
			return err
		}
		if len(b) == 0 {
			return nil
		}
	}
	o.Append(b)
	return nil
}

// Append keeps b to write later (Flush), after what waits already: writes gathered over a wake-up of
// the loop go out in one.
func (o *Output) Append(b []byte) {
	if len(b) == 0 {
		return
	}
	if o.buf == nil {
		o.buf = outputBufs.Get().(*[]byte)
	} else if o.off > 0 && int(o.off) >= len(*o.buf)/2 {
		// What was written is most of the buffer: keep it from growing behind a socket that takes
		// a little at a time.
		*o.buf = (*o.buf)[:copy(*o.buf, (*o.buf)[o.off:])]
		o.off = 0
	}
	*o.buf = append(*o.buf, b...)
}

// Flush writes what waits to fd until it is all gone or the socket is full. The error is the write's,
// other than ErrAgain; Len says whether anything is left.
func (o *Output) Flush(fd int) error {
	for o.Len() > 0 {
		n, err := Write(fd, (*o.buf)[o.off:])
		if n > 0 {
			o.off += int32(n)
			continue
		}
		if err == ErrAgain {
			return nil
		}
		return err
	}
	if o.buf == nil {
		return nil
	}
	if o.Retain && cap(*o.buf) <= maxPooled {
		*o.buf, o.off = (*o.buf)[:0], 0
		return nil
	}
	o.Reset()
	return nil
}

// Reset drops what waits and gives the buffer back.
func (o *Output) Reset() {
	if o.buf == nil {
		return
	}
	if cap(*o.buf) <= maxPooled {
		*o.buf = (*o.buf)[:0]
		outputBufs.Put(o.buf)
	}
	o.buf, o.off = nil, 0
}

//go:build !(linux && amd64)

package integration_test

import (
	"errors"
	"time"

	"github.com/dnft/dnft/test/harness"
)

// errTraceUnsupported: the system call tracing of tracedKill reads amd64
// registers.
var errTraceUnsupported = errors.New("tracing the batch send needs linux/amd64")

type killMoment int

const (
	killBeforeSend killMoment = iota
	killDuringSend
	killAfterSend
	killAtCommit
)

func (m killMoment) String() string { return "" }

type traced struct {
	reached, returned bool
	call, cpu         time.Duration
	output            string
}

func tracedKill(string, []string, killMoment, time.Duration, int) (traced, error) {
	return traced{}, errTraceUnsupported
}

func commitMonitor(*harness.NS) (int, error) { return -1, errTraceUnsupported }

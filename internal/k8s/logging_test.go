package k8s

import (
	"log/slog"
	"strings"
	"sync"
	"testing"

	"k8s.io/klog/v2"

	"github.com/heraldlb/herald/internal/testkit"
)

// A binary run more than once in one process (the controller's tests run
// an incarnation per restart) swaps where client-go's logs go while other
// goroutines log: no data race (go test -race), and each line lands in the
// log of the latest call, with the attributes it was logged with.
func TestUseLoggerSwapsTheGlobalLoggers(t *testing.T) {
	var first, second testkit.Buffer
	UseLogger(NewLogger(&first, slog.LevelInfo))
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				klog.Background().WithValues("k", "v").Info("background")
			}
		}
	}()
	klog.Background().WithValues("who", "first").Info("to the first")
	UseLogger(NewLogger(&second, slog.LevelInfo))
	klog.Background().WithValues("who", "second").Info("to the second")
	close(stop)
	wg.Wait()
	if !strings.Contains(first.String(), `"who":"first"`) || strings.Contains(first.String(), "to the second") {
		t.Errorf("first log: %s", first.String())
	}
	if !strings.Contains(second.String(), `"msg":"to the second","who":"second"`) {
		t.Errorf("second log: %s", second.String())
	}
}

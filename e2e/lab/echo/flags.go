package echo

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
)

// ParseFlags reads the backend's command line (the lab passes --pod,
// --namespace, --node, --tcp, --udp and --ready-file).
func ParseFlags(args []string) (Config, error) {
	var cfg Config
	fs := flag.NewFlagSet("lab-echo", flag.ContinueOnError)
	fs.StringVar(&cfg.Pod, "pod", "", "pod name")
	fs.StringVar(&cfg.Namespace, "namespace", "", "pod namespace")
	fs.StringVar(&cfg.Node, "node", "", "node name")
	tcp := fs.String("tcp", "8080", "comma-separated TCP ports (HTTP, and raw line echo)")
	udp := fs.String("udp", "", "comma-separated UDP ports")
	fs.StringVar(&cfg.ReadyFile, "ready-file", "", "file created once every port listens")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	var err error
	if cfg.TCP, err = ports(*tcp); err != nil {
		return cfg, err
	}
	cfg.UDP, err = ports(*udp)
	return cfg, err
}

func ports(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		p, err := strconv.Atoi(f)
		if err != nil || p < 1 || p > 65535 {
			return nil, fmt.Errorf("bad port %q", f)
		}
		out = append(out, p)
	}
	return out, nil
}

// Main runs the backend from a command line until SIGTERM or SIGINT.
func Main(args []string) error {
	cfg, err := ParseFlags(args)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return Serve(ctx, cfg, slog.New(slog.NewTextHandler(os.Stderr, nil)))
}

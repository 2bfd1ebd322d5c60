package k8s

import (
	"errors"
	"flag"
	"fmt"
)

// ClientFlags are the settings both binaries share: where the API server
// is, how much they log, and how hard they may press the API server.
type ClientFlags struct {
	Kubeconfig string
	LogLevel   string
	// KubeAPIQPS and KubeAPIBurst limit the client's request rate.
	KubeAPIQPS   float64
	KubeAPIBurst int
}

// Bind registers the flags on fs, with c's values as defaults.
func (c *ClientFlags) Bind(fs *flag.FlagSet) {
	fs.StringVar(&c.Kubeconfig, "kubeconfig", c.Kubeconfig, "kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster)")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
	fs.Float64Var(&c.KubeAPIQPS, "kube-api-qps", c.KubeAPIQPS, "requests per second to the API server")
	fs.IntVar(&c.KubeAPIBurst, "kube-api-burst", c.KubeAPIBurst, "request burst to the API server")
}

// Validate checks the settings.
func (c ClientFlags) Validate() error {
	var errs []error
	if _, err := ParseLevel(c.LogLevel); err != nil {
		errs = append(errs, err)
	}
	if c.KubeAPIQPS <= 0 || c.KubeAPIBurst < 1 {
		errs = append(errs, errors.New("--kube-api-qps and --kube-api-burst must be positive"))
	}
	return errors.Join(errs...)
}

// ParseFlags parses args (without the program name) into the flags that
// bind registers, and refuses positional arguments.
func ParseFlags(program string, args []string, bind func(*flag.FlagSet)) error {
	fs := flag.NewFlagSet(program, flag.ContinueOnError)
	bind(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	return nil
}

// Command herald-migrate turns MetalLB's configuration (IPAddressPool,
// L2Advertisement, BGPAdvertisement, BGPPeer v1beta1 and v1beta2,
// BFDProfile, Community) into Herald's, from YAML files or from the
// cluster, and prints it or applies it. A setting with no Herald
// equivalent is refused by name and, unless --partial, nothing is
// written. See docs/migrate.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"k8s.io/client-go/dynamic"

	"github.com/heraldlb/herald/cmd/herald-migrate/migrate"
	"github.com/heraldlb/herald/internal/k8s"
)

// options are all of herald-migrate's settings.
type options struct {
	// Files to read ("-": standard input); none: the cluster.
	Files files
	// Namespace is MetalLB's, where it reads its configuration.
	Namespace string
	// Output is where the YAML goes ("-": standard output).
	Output string
	// Apply writes the objects to the cluster instead of printing them.
	Apply bool
	// Partial writes what can be translated even when something is refused.
	Partial    bool
	Kubeconfig string
}

// files is a repeatable -f flag.
type files []string

func (f *files) String() string     { return strings.Join(*f, ",") }
func (f *files) Set(v string) error { *f = append(*f, v); return nil }

func (o *options) bind(fs *flag.FlagSet) {
	fs.Var(&o.Files, "f", "a YAML or JSON file of MetalLB objects, \"-\" for standard input (repeatable); none: read them from the cluster")
	fs.StringVar(&o.Namespace, "namespace", o.Namespace, "MetalLB's namespace, where it reads its configuration")
	fs.StringVar(&o.Output, "o", o.Output, "file to write Herald's objects to, \"-\" for standard output")
	fs.BoolVar(&o.Apply, "apply", o.Apply, "apply Herald's objects to the cluster (server-side apply, after a dry run of all of them) instead of printing them")
	fs.BoolVar(&o.Partial, "partial", o.Partial, "write what can be translated even if something is refused")
	fs.StringVar(&o.Kubeconfig, "kubeconfig", o.Kubeconfig, "kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster)")
}

func parse(args []string) (options, error) {
	o := options{Namespace: "metallb-system", Output: "-"}
	err := k8s.ParseFlags("herald-migrate", args, o.bind)
	if err == nil && o.Apply && o.Output != "-" {
		err = errors.New("-o and --apply exclude each other")
	}
	return o, err
}

func main() {
	o, err := parse(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "herald-migrate:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, o, os.Stdin, os.Stdout, os.Stderr))
}

// Exit codes of run.
const (
	exitOK      = 0
	exitRefused = 1 // something has no equivalent, or the API server refused an object
	exitError   = 2 // bad input or no cluster
)

// run does the work and returns the exit code; findings and errors go to
// stderr.
func run(ctx context.Context, o options, stdin io.Reader, stdout, stderr io.Writer) int {
	// A failed write to stderr has nowhere left to be reported.
	say := func(format string, args ...any) { _, _ = fmt.Fprintf(stderr, format+"\n", args...) }
	fail := func(code int, format string, args ...any) int {
		say("herald-migrate: "+format, args...)
		return code
	}
	var dyn dynamic.Interface
	if len(o.Files) == 0 || o.Apply {
		cfg, err := k8s.RESTConfig(o.Kubeconfig, 50, 100, "herald-migrate")
		if err != nil {
			return fail(exitError, "%v", err)
		}
		if dyn, err = dynamic.NewForConfig(cfg); err != nil {
			return fail(exitError, "%v", err)
		}
	}
	rd := &migrate.Reader{Namespace: o.Namespace}
	for _, name := range o.Files {
		if err := readFile(rd, name, stdin); err != nil {
			return fail(exitError, "%v", err)
		}
	}
	if len(o.Files) == 0 {
		if err := rd.ReadCluster(ctx, dyn); err != nil {
			return fail(exitError, "%v", err)
		}
	}
	res := migrate.Convert(rd.Config)
	refusals := append(rd.Refusals, res.Refusals...)
	for _, n := range res.Notes {
		say("note: %s", n)
	}
	for _, r := range refusals {
		say("refused: %s", r)
	}
	if len(refusals) > 0 && !o.Partial {
		return fail(exitRefused, "%d settings have no Herald equivalent (above); nothing written. --partial writes the rest", len(refusals))
	}
	if o.Apply {
		if err := migrate.Apply(ctx, dyn, res.Objects); err != nil {
			return fail(exitRefused, "%v", err)
		}
		say("herald-migrate: applied %d objects", len(res.Objects))
	} else if err := writeOutput(o.Output, stdout, res); err != nil {
		return fail(exitError, "%v", err)
	}
	if len(refusals) > 0 {
		return exitRefused
	}
	return exitOK
}

func readFile(rd *migrate.Reader, name string, stdin io.Reader) error {
	if name == "-" {
		return rd.ReadYAML(stdin, "standard input")
	}
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close() //nolint:errcheck // read only
	return rd.ReadYAML(f, name)
}

func writeOutput(name string, stdout io.Writer, res migrate.Result) error {
	if name == "-" {
		return migrate.WriteYAML(stdout, res)
	}
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if err := migrate.WriteYAML(f, res); err != nil {
		_ = f.Close() // the write's error is the one to report
		return err
	}
	return f.Close()
}

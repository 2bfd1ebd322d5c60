package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/heraldlb/herald/e2e/lab"
	"github.com/heraldlb/herald/internal/netns"
)

func down(args []string) error {
	fs := flag.NewFlagSet("down", flag.ExitOnError)
	all := fs.Bool("all", false, "remove every run on this machine, also those whose owner still runs")
	_ = fs.Parse(args)
	if err := netns.RequireRoot(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var prefixes []string
	switch {
	case fs.NArg() > 0:
		prefixes = fs.Args()
	case *all:
		runs, err := lab.Runs(ctx)
		if err != nil {
			return err
		}
		for _, r := range runs {
			prefixes = append(prefixes, r.Prefix)
		}
	default:
		cleaned, err := lab.CleanupStale(ctx)
		for _, p := range cleaned {
			fmt.Println("removed", p)
		}
		if len(cleaned) == 0 && err == nil {
			fmt.Println("no crashed lab found (herald-lab list shows the runs; down --all removes live ones too)")
		}
		return err
	}
	var errs []error
	for _, p := range prefixes {
		if err := lab.CleanupRun(ctx, p); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p, err))
			continue
		}
		fmt.Println("removed", p)
	}
	return errors.Join(errs...)
}

func list() error {
	runs, err := lab.Runs(context.Background())
	if err != nil {
		return err
	}
	if len(runs) == 0 {
		fmt.Println("no runs")
	}
	for _, r := range runs {
		switch {
		case r.Owner == 0:
			fmt.Printf("%s  (no owner recorded: not started by the lab or testenv)\n", r.Prefix)
		case r.OwnerAlive:
			fmt.Printf("%s  owner pid %d, running\n", r.Prefix, r.Owner)
		default:
			fmt.Printf("%s  owner pid %d died: herald-lab down removes it\n", r.Prefix, r.Owner)
		}
	}
	return nil
}

// Package split holds the Layer 2 tests that need four nodes: an even
// split of the speakers, where no side may take anything over.
package split

import (
	"os"
	"testing"

	"github.com/heraldlb/herald/e2e/lab"
	"github.com/heraldlb/herald/e2e/labtest"
)

func TestMain(m *testing.M) { os.Exit(labtest.Main(m, lab.Options{Nodes: 4})) }

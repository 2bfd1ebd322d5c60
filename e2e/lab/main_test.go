package lab_test

import (
	"os"
	"testing"

	"github.com/heraldlb/herald/e2e/lab"
	"github.com/heraldlb/herald/e2e/labtest"
)

// One lab serves every test of this package (labtest.Lab starts it on first use).
func TestMain(m *testing.M) { os.Exit(labtest.Main(m, lab.Options{})) }

package cli

import (
	"context"
	"io"

	"github.com/spf13/cobra"
)

func sweepCmd(ctx context.Context, stdout, stderr io.Writer) *cobra.Command {
	return &cobra.Command{Use: "sweep FILE", Short: "not yet"}
}

package main

import (
	"flag"
	"fmt"
	"math"
	"os"
	"slices"
)

// precision is the half-width of the median's confidence interval that
// the "rounds for ±p" column aims at.
var precision = flag.Float64("precision", 0.02, "the ratio precision (half-width of the median's 95% interval) to estimate the rounds needed for")

// roundsCSV names a file for every round's CPU time per operation, so
// that the rounds of several runs (of two builds, alternated) can be
// pooled: shape,configuration,round,cpu_ns_per_op.
var roundsCSV = flag.String("csv", "", "write each round's CPU ns/op of every configuration to this file (shape,configuration,round,cpu_ns_per_op)")

// writeRounds writes the per-round CPU times to *roundsCSV, if set.
func writeRounds(cs []*config) error {
	if *roundsCSV == "" {
		return nil
	}
	f, err := os.Create(*roundsCSV)
	if err != nil {
		return err
	}
	for _, c := range cs {
		for r, v := range c.perRound {
			fmt.Fprintf(f, "%s,%s,%d,%.1f\n", c.shape, c.name, r, v)
		}
	}
	return f.Close()
}

// printSpread prints, per shape, the ratio of each configuration's CPU
// time per operation to its baselines' (uncached GORM and DryRun) round by
// round: each round pairs slices run within about a second of each other,
// so a load change of the shared machine falls on both sides of the ratio.
// It gives the median and the inter-quartile range of those per-round
// ratios (how noisy one round is), the 95% confidence interval of the
// median (distribution-free, from order statistics: how well this run
// knows the ratio), and how many rounds would narrow that interval to
// ±precision (its width shrinks as the square root of the rounds).
func printSpread(cs []*config, rounds int) {
	fmt.Printf("\nPer-round ratios of CPU time per operation (%d rounds; the interval is the median's, 95%%):\n\n", rounds)
	fmt.Println("| shape | configuration | against | median | Q1 | Q3 | IQR | 95% interval of the median | rounds for ±" + fmt.Sprintf("%.0f%%", *precision*100) + " |")
	fmt.Println("| --- | --- | --- | ---: | ---: | ---: | ---: | --- | ---: |")
	find := func(shape, name string) *config {
		for _, c := range cs {
			if c.shape == shape && c.name == name {
				return c
			}
		}
		return nil
	}
	for _, c := range cs {
		for _, base := range []string{"uncached", "dryrun"} {
			b := find(c.shape, base)
			if b == nil || b == c || c.name == "uncached" && base == "dryrun" {
				continue
			}
			n := min(len(c.perRound), len(b.perRound))
			if n == 0 {
				continue
			}
			r := make([]float64, n)
			for k := range n {
				r[k] = c.perRound[k] / b.perRound[k]
			}
			slices.Sort(r)
			q1, med, q3 := quantile(r, 0.25), quantile(r, 0.5), quantile(r, 0.75)
			lo, hi := medianInterval(r)
			need := "-"
			if half := (hi - lo) / 2; half > 0 && *precision > 0 {
				need = fmt.Sprint(int(math.Ceil(float64(n) * (half / *precision) * (half / *precision))))
			}
			fmt.Printf("| %s | %s | %s | %.3f | %.3f | %.3f | %.3f | %.3f to %.3f | %s |\n",
				c.shape, c.name, base, med, q1, q3, q3-q1, lo, hi, need)
		}
	}
}

// quantile returns the q-quantile of sorted r, interpolated linearly.
func quantile(r []float64, q float64) float64 {
	if len(r) == 1 {
		return r[0]
	}
	pos := q * float64(len(r)-1)
	i := int(pos)
	if i+1 >= len(r) {
		return r[len(r)-1]
	}
	return r[i] + (pos-float64(i))*(r[i+1]-r[i])
}

// medianInterval returns the distribution-free 95% confidence interval of
// the median of sorted r: the order statistics at n/2 ∓ 1.96·√n/2 (the
// binomial's normal approximation; whole range below 6 values).
func medianInterval(r []float64) (float64, float64) {
	n := len(r)
	d := 1.96 * math.Sqrt(float64(n)) / 2
	lo := int(math.Floor(float64(n)/2 - d))
	hi := int(math.Ceil(float64(n)/2+d)) - 1
	return r[max(lo, 0)], r[min(hi, n-1)]
}

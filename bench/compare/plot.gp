# bench/compare/plot.gp: throughput.png from sweep.dat, which compare writes.
# Unsynced single-record appends (one acknowledged write per record) of each
# library against the record size: records/s on the left, MB/s of values on
# the right, both on log scales.  Run from this directory: gnuplot plot.gp

set terminal pngcairo size 1400,560 font "sans,11" noenhanced
set output "throughput.png"
set datafile separator tab
set datafile missing "NaN"
set key autotitle columnhead
set logscale xy
set grid xtics ytics mytics
set xtics ("16" 16, "64" 64, "256" 256, "1K" 1024, "4K" 4096, "16K" 16384)
set xrange [12:22000]
set xlabel "record size (bytes of value)"
set key left bottom box opaque

# One colour and point type per column, libtopic (column 2) thick.
set linetype 1 lc rgb "#d62728" lw 3 pt 7 ps 1.3
set linetype 2 lc rgb "#1f77b4" lw 1.5 pt 5
set linetype 3 lc rgb "#2ca02c" lw 1.5 pt 9
set linetype 4 lc rgb "#9467bd" lw 1.5 pt 11
set linetype 5 lc rgb "#8c564b" lw 1.5 pt 13

set multiplot layout 1,2 title "Unsynced appends, one record per call (medians; bench/compare/results.md)"

set ylabel "records/s"
set format y "%.0s%c"
plot for [i=2:*] "sweep.dat" using 1:i with linespoints lt (i-1)

set ylabel "MB/s (values, 10^6 bytes)"
set format y "%g"
set key right bottom box opaque
plot for [i=2:*] "sweep.dat" using 1:(column(i) * $1 / 1e6) with linespoints lt (i-1) title columnhead(i)

unset multiplot

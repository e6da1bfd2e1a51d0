# chart.gp: the chart of `make bench`, drawn by bench/run.sh as
#   gnuplot -e "datafile='F'; outfile='O.png'; subtitle='S'" chart.gp
# datafile has one line per ratio, tab-separated: index, label, ratio,
# target ratio (0: none), target met (1/0), server CPU row (1/0). Every
# ratio reads "higher is better for libactorconn", so each bar grows from
# the line at 1.0: up where the library is ahead, down where it is behind.
# A blue tick marks the ratio the issue asks for; a bar is green if it
# reaches its target, red if not; without a target, purple if it compares
# the servers' CPU per operation, grey otherwise.

set datafile separator "\t"
stats datafile using 1 nooutput
# About 45 pixels a bar, and no narrower than the chart was.
width = STATS_records * 45 > 1400 ? STATS_records * 45 : 1400
if (strstrt(GPVAL_TERMINALS, "pngcairo") > 0) {
	set terminal pngcairo size width,800 font "sans,10" noenhanced
} else {
	set terminal png size width,800 noenhanced
}
set output outfile
set title "libactorconn vs alternatives: ratio > 1 favours libactorconn\n".subtitle
set logscale y 2
set ylabel "ratio (log scale)"
set grid ytics
set xtics rotate by -35 left nomirror
set bmargin 9
set rmargin 9
set key top left
set arrow 1 from graph 0, first 1 to graph 1, first 1 nohead lw 2 lc rgb "black" front

set xrange [-0.6:STATS_max + 0.6]

colour(t, met, cpu) = t <= 0 ? (cpu > 0.5 ? 0x9467bd : 0x999999) : \
	(met > 0.5 ? 0x2ca02c : 0xd62728)

plot datafile using 1:3:($1 - 0.35):($1 + 0.35):(1):3:(colour($4, $5, $6)):xtic(2) \
	with boxxyerror fill solid 0.8 lc rgb variable notitle, \
     NaN with boxes fill solid 0.8 lc rgb "#9467bd" title "server CPU per operation", \
     datafile using ($1 - 0.45):($4 > 0 ? $4 : 1/0):(0.9):(0) with vectors nohead lw 3 lc rgb "#1f4fd6" \
	title "target", \
     datafile using 1:($3 > 1 ? $3 : 1):(sprintf("%.2fx", $3)) with labels offset 0,0.7 \
	notitle

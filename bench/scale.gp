# scale.gp: one chart of `make bench-scale`, drawn by bench/scale.sh as
#   gnuplot -e "files='A.dat B.dat'; titles='a b'; colours='#rrggbb ...';
#               outfile='O.png'; xlabel='...'; xbase=10; xformat='%.0s%c';
#               memlabel='...'; cpulabel='...'; latlabel='...';
#               heading='...'" scale.gp
# Each file is one server's sweep, tab-separated: the swept value, memory
# per connection (bytes), server CPU per operation (us), p99 latency (us);
# "-" where a figure is missing. Three panels side by side, one per figure,
# a line per server in its colour; both axes are logarithmic, the x axis
# in base xbase (10 for counts, 4 for sizes, whose points are powers of 4).
# A figure of 0 or below cannot be drawn on a log scale and is left out.

if (strstrt(GPVAL_TERMINALS, "pngcairo") > 0) {
	set terminal pngcairo size 1650,560 font "sans,10" noenhanced
} else {
	set terminal png size 1650,560 noenhanced
}
set output outfile
set datafile separator "\t"
set datafile missing "-"
set logscale x xbase
set logscale y
set format x xformat
set grid xtics ytics mytics
set key below horizontal
set xlabel xlabel
# The swept points span the x axis, with a margin that keeps the first
# and last off the frame; the y axis runs between whole powers of ten, so
# that it always has labelled tics.
set autoscale xfix
set offsets graph 0.04, graph 0.04, 0, 0
set tmargin 4
set bmargin 6

set multiplot layout 1,3 title heading
do for [panel = 2:4] {
	set ylabel (panel == 2 ? memlabel : panel == 3 ? cpulabel : latlabel)
	# "10k", "1M" for bytes and latencies; CPU figures go below 1.
	if (panel == 3) { set format y "%g" } else { set format y "%.0s%c" }
	plot for [i = 1:words(files)] word(files, i) \
		using 1:(column(panel) > 0 ? column(panel) : 1/0) \
		with linespoints lw 2 pt 7 ps 0.8 lc rgb word(colours, i) \
		title word(titles, i)
}
unset multiplot

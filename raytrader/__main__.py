from raytrader.cli import app

app()
